"""Tests of the client SDK: unit tests without sockets, end-to-end against real processes."""
