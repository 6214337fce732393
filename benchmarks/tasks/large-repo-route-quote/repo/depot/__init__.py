"""The freight network."""
