"""The message store: protocol, memory and SQL implementations (see ``store``)."""
