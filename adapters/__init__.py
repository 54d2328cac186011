"""One module per venue: a venue's raw state turned into schema positions, with provenance."""
