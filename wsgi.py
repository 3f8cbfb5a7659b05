"""The app for gunicorn: `gunicorn wsgi:app`."""

from landing import create_app

app = create_app()
