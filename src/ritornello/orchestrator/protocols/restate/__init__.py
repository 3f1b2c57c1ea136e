"""Restate's service protocol (docs/restate-protocol.md): unchanged Restate SDK endpoints, in
any language, served by Ritornello's engine.

``_manifest`` reads the endpoint manifest and negotiates the version, ``_wire`` frames and
parses messages, ``_journal`` maps Restate's journal onto Ritornello's, ``_adapter`` sends it.
"""

from ritornello.orchestrator.protocols.restate._adapter import RestateProtocol, read_discovery

__all__ = ["RestateProtocol", "read_discovery"]
