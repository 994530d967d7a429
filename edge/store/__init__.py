"""The frame store: image files plus a SQL index (see DESIGN.md, Store)."""
