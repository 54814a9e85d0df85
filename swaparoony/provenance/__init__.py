"""What every picture says about itself: content credentials, IPTC XMP and a visible label."""
