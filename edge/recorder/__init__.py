"""Getting footage into the store: the recorder (`recorder`, `writer`: synchronized C1/C2 frames,
segments, quota, counters) and the import of videos and image folders with masks (`importer`)."""
