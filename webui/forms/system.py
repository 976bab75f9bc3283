"""System page forms: backup (secrets optional) and restore (an uploaded archive)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField


class BackupForm(FlaskForm):
    include_secrets = BooleanField("Include secrets (passwords, Telegram sign-in, bot token)")


class RestoreForm(FlaskForm):
    archive = FileField(
        "Backup file (.tar.gz)", validators=[FileRequired("Choose the backup file to restore.")]
    )
