"""The index database's schema and format: what index_db.py creates, and how an older format is brought up to
date in place (MIGRATIONS: nothing re-embedded)."""

FORMAT_VERSION = 6  # 2: sentence vectors; 3: documents.ocr; 4: int8 vectors, chunk text only in documents;
# 5: both; 6: documents.words. MIGRATIONS bring an older format to the next in place, nothing re-embedded:
MIGRATIONS = {5: ["ALTER TABLE documents ADD COLUMN words BLOB"]}  # its OCR pages simply have no word boxes
DB_NAME = "rag.sqlite"

PAGE_SIZE = 65536  # rows of ~2-4 KB pack into big pages with little slack (4 KB pages wasted ~20%)
SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,        -- absolute path
    source TEXT NOT NULL,         -- path relative to the folder that was indexed
    hash TEXT NOT NULL,           -- sha256 of the bytes: unchanged content is never re-read
    size INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
    source TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    page INTEGER,
    title TEXT NOT NULL,
    chunk_title TEXT NOT NULL,    -- the title as its chunks were embedded and keyword-indexed (maybe shortened)
    text TEXT NOT NULL,           -- offsets of chunks and citations index into this
    ocr INTEGER NOT NULL DEFAULT 0, -- 1: the text was read from the page image by OCR
    words BLOB                    -- OCR: its words' boxes on the page (rag/pages/words.py), else NULL
);
CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FAISS id, never reused: a stale FAISS file never
                                           -- holds another chunk's vector under a live id
    document INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,       -- the chunk's text is documents.text[start:end], stored once
    end INTEGER NOT NULL,
    sentences BLOB NOT NULL,      -- int32 (start, end) pairs relative to start
    embed_hash BLOB NOT NULL,     -- 16 bytes: lets an unchanged chunk of a changed file keep its vectors
    vector BLOB NOT NULL,         -- pack(): int8 and a scale, normalized
    sentence_vectors BLOB NOT NULL  -- pack(): one normalized row per sentence
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, content='', tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS failures (path TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL);
"""
