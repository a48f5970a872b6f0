"""The web UI: server-rendered pages (Jinja2) over the same services as the REST API, with
small scripts of our own for the live console, the ref pickers, detection and the charts."""
