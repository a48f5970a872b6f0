"""The pages of the web UI, one module per area; each route is thin: the viewer, the CSRF
check on forms, one service call, a template or a redirect."""
