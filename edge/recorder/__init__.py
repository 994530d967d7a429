"""Recording synchronized C1/C2 streams into the frame store."""
