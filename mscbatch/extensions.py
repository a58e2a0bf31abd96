"""Extensions, created unbound here and bound to the app in the factory (no import-time side effects)."""
from __future__ import annotations

from flask_login import LoginManager
from flask_smorest import Api as _SmorestApi
from flask_wtf.csrf import CSRFProtect

from mscbatch.database import Database


class Api(_SmorestApi):
    """flask-smorest, minus its app-wide JSON error handler: mscbatch.errors owns error rendering
    (HTML pages for people, RFC 9457 problem documents under /api/)."""

    def _register_error_handlers(self) -> None:
        return None


db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
api = Api()
