"""The frame store: image files plus a SQL index (DESIGN.md, Store): files written atomically
(`files`), the index and its migrations (`models`, `database`, `migrations/`), the store itself
(`frame_store`), reconciliation (`reconcile`), disk quota and retention (`retention`), the removal
command log (`command_log`) and every saved calibration version (`calibrations`)."""
