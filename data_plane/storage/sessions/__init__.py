"""The session store: where each logged-in device is connected (protocol, memory, Redis)."""
