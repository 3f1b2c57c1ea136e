"""The protocol version this code speaks. Bumped on any incompatible change."""

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1
MAX_PROTOCOL_VERSION = 1
