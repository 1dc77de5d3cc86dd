"""Stage 4, store: SQLite, and every SQL statement of the project.

  index_db.py    one index folder's database: files, documents, chunks, vectors, keyword index
  index_schema.py  its schema, format version and in-place migrations
  vectors.py     the int8 codec its vectors are stored in
  library_db.py  the installation's own records beside the indexes: knowledge bases, login sessions,
                 API tokens, conversations and feedback
"""

from .index_db import DB_NAME, FORMAT_VERSION, MIGRATIONS, Store, _Transaction, fts_body
from .vectors import pack, unpack, unpack_rows
from .library_db import LibraryStore

__all__ = ["DB_NAME", "FORMAT_VERSION", "MIGRATIONS", "LibraryStore", "Store", "_Transaction", "fts_body", "pack", "unpack",
           "unpack_rows"]
