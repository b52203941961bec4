"""The user bus: low-volume UI events for signed-in pages (wire.py: the messages, service.py: delivery)."""
