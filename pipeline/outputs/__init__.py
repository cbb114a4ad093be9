"""What leaves: the digest, alerts, mail and chat, the Datasette plugins (Atom, safe CSV)
and the Datasette server. May import every stage below (storage, analysis, sources,
settings) and models, errors, lock."""
