"""Image files and pixels: decoding within limits, encoding, face geometry and pictures people read."""
