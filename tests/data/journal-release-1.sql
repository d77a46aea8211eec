-- A journal written by release 1 (main at 53c18f3): one job done, one waiting for its
-- result after a cut, one held by the credit guard, one queued. Made with that release's
-- own watcher/journal.py, dumped with sqlite3's iterdump.
BEGIN TRANSACTION;
CREATE TABLE history (
    day TEXT NOT NULL,
    inbox TEXT NOT NULL,
    state TEXT NOT NULL,
    jobs INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    PRIMARY KEY (day, inbox, state)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    inbox TEXT,
    kind TEXT NOT NULL,
    url TEXT,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    outformat TEXT NOT NULL,
    lang TEXT NOT NULL,
    ocr INTEGER NOT NULL,
    outbox TEXT NOT NULL,
    archive TEXT NOT NULL,
    failed TEXT NOT NULL,
    after_success TEXT NOT NULL,
    state TEXT NOT NULL,
    remote_name TEXT NOT NULL,
    pages INTEGER,
    sent_at REAL,
    link TEXT,
    staged TEXT, -- unused: a result's staged name follows from the job (Job.staged)
    output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    error TEXT,
    available_pages INTEGER,
    original_at TEXT,
    charged_on TEXT,
    held_until REAL,
    approved INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO "jobs" VALUES(1,'/tmp/tmpodzr9qbv/inbox/done.pdf','/tmp/tmpodzr9qbv/inbox','file',NULL,'hash-done.pdf',17,1796150795158379798,'docx','English',1,'/home/u/PDFOCR/outbox','/home/u/PDFOCR/archive','/home/u/PDFOCR/failed','archive','done','done-abc123.pdf',2,1000000000.0,'https://pdfocr.org/doc/x.docx',NULL,'/home/u/PDFOCR/outbox/done.docx',0,0.0,NULL,998,'/home/u/PDFOCR/archive/done.pdf','2026-11-20',NULL,0,1.79615079515842652321e+09,1.79615079515994620316e+09);
INSERT INTO "jobs" VALUES(2,'/tmp/tmpodzr9qbv/inbox/waiting.pdf','/tmp/tmpodzr9qbv/inbox','file',NULL,'hash-waiting.pdf',20,1796150795160862928,'docx','English',1,'/home/u/PDFOCR/outbox','/home/u/PDFOCR/archive','/home/u/PDFOCR/failed','archive','waiting_for_result','waiting-abc123.pdf',3,1000000000.0,NULL,NULL,NULL,0,0.0,NULL,NULL,NULL,'2026-11-20',NULL,0,1.79615079516089582445e+09,1796150795.16166);
INSERT INTO "jobs" VALUES(3,'/tmp/tmpodzr9qbv/inbox/held.pdf','/tmp/tmpodzr9qbv/inbox','file',NULL,'hash-held.pdf',17,1796150795162504077,'docx','English',1,'/home/u/PDFOCR/outbox','/home/u/PDFOCR/archive','/home/u/PDFOCR/failed','archive','held','held-abc123.pdf',5000,NULL,NULL,NULL,NULL,0,0.0,'it has 5000 pages and the account has 998 left',NULL,NULL,NULL,NULL,0,1.79615079516253256801e+09,1.79615079516293478013e+09);
INSERT INTO "jobs" VALUES(4,'/tmp/tmpodzr9qbv/inbox/queued.pdf','/tmp/tmpodzr9qbv/inbox','file',NULL,'hash-queued.pdf',19,1796150795163748957,'docx','English',1,'/home/u/PDFOCR/outbox','/home/u/PDFOCR/archive','/home/u/PDFOCR/failed','archive','queued','queued-abc123.pdf',NULL,NULL,NULL,NULL,NULL,0,0.0,NULL,NULL,NULL,NULL,NULL,0,1.79615079516377472877e+09,1.79615079516377472877e+09);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "meta" VALUES('available_pages','998');
INSERT INTO "meta" VALUES('available_pages_at','1796150795.15938');
CREATE INDEX jobs_state ON jobs (state, not_before);
CREATE INDEX jobs_source ON jobs (source);
CREATE INDEX jobs_twin ON jobs (content_hash, outformat, lang, ocr);
CREATE INDEX jobs_charged ON jobs (charged_on, inbox, pages);
CREATE INDEX jobs_updated ON jobs (updated_at);
CREATE TRIGGER jobs_balance AFTER UPDATE OF available_pages ON jobs
WHEN NEW.available_pages IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO meta (key, value) VALUES
        ('available_pages', NEW.available_pages), ('available_pages_at', NEW.updated_at);
END;
COMMIT;
