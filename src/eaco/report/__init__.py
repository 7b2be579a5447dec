"""Tables, files and plots for people and machines."""
