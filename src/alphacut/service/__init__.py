"""What the service does, independent of HTTP: keys, images, operations, bounded work."""
