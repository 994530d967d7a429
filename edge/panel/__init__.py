"""The technician's panel: a Flask app served by waitress, started by the agent or on its own."""
