"""Server-rendered pages: citizen portal, operator console, partner docs, public pages.

Pages call the parts' services (never their tables), render Jinja2 templates with Babel catalogues
(Chinese first, English by `?lang=en`), and use only local assets.
"""
