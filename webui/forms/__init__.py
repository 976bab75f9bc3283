"""WTForms forms of the web UI, one module per page (CSRF from Flask-WTF's FlaskForm)."""
