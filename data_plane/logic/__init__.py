"""data_plane/logic."""
