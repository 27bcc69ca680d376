"""The team around a shared store: accounts (``store.accounts``), API tokens
(``store.tokens``), roles per namespace (``store.grants``) and the audit log
(``store.audit``). Each part is given the database engine, and nothing more."""
