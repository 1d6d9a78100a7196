"""The Callback UI on the internal port at ``/ui``: server-rendered pages, sessions, CSRF."""
