"""The system tier: the command line run as a user runs it, faults, load, the docs."""
