"""The QSL sync service: per-user LoTW and eQSL downloads, matched to the log, with health in words.

(Filled in by the next steps: clients, matching, the per-user schedule.)
"""

from __future__ import annotations

from dataclasses import dataclass

from hamsrv.config import Config
from hamsrv.db.database import Database
from hamsrv.identity.vault import Vault


@dataclass
class QslService:
    db: Database
    vault: Vault

    @classmethod
    def from_config(cls, config: Config, db: Database) -> QslService:
        return cls(db, Vault.load(config.secret_key, config.data_dir))
