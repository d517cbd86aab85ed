// A SQLite VFS that writes each transaction's write-ahead-log frames with one system call.
//
// SQLite appends a commit to the log one frame at a time, and each frame as two pwrite calls:
// its 24-byte header, then the page. A message writes ten or so pages, so some twenty system
// calls, which on a virtual machine cost more than the copying they do (issue 9). This VFS wraps
// the default one ("unix") and changes one thing for the log file alone: frames appended past
// everything written so far are gathered in memory and written together when the commit frame
// is complete, before SQLite publishes the commit in the shared wal-index where other
// connections look. A failed write is returned by the write of the commit frame, so SQLite
// abandons the commit exactly as it would have without the buffer. Everything else (a write
// that is not an append, every read, sync, truncate and size query, closing) first writes
// what is gathered, so the file always reads as if nothing were buffered.
//
// The declarations below are the parts of sqlite3.h this file needs, from SQLite's stable
// interface; the functions are go-sqlite3's copy of SQLite, linked into the same program
// (declared weak so that this package's own link check does not look for them).

#include <stdlib.h>
#include <string.h>

typedef long long sqlite3_int64;
typedef struct sqlite3_file sqlite3_file;
typedef struct sqlite3_io_methods sqlite3_io_methods;
typedef struct sqlite3_vfs sqlite3_vfs;
typedef void (*sqlite3_syscall_ptr)(void);

struct sqlite3_file {
	const sqlite3_io_methods *pMethods;
};

struct sqlite3_io_methods {
	int iVersion;
	int (*xClose)(sqlite3_file *);
	int (*xRead)(sqlite3_file *, void *, int iAmt, sqlite3_int64 iOfst);
	int (*xWrite)(sqlite3_file *, const void *, int iAmt, sqlite3_int64 iOfst);
	int (*xTruncate)(sqlite3_file *, sqlite3_int64 size);
	int (*xSync)(sqlite3_file *, int flags);
	int (*xFileSize)(sqlite3_file *, sqlite3_int64 *pSize);
	int (*xLock)(sqlite3_file *, int);
	int (*xUnlock)(sqlite3_file *, int);
	int (*xCheckReservedLock)(sqlite3_file *, int *pResOut);
	int (*xFileControl)(sqlite3_file *, int op, void *pArg);
	int (*xSectorSize)(sqlite3_file *);
	int (*xDeviceCharacteristics)(sqlite3_file *);
	int (*xShmMap)(sqlite3_file *, int iPg, int pgsz, int, void volatile **);
	int (*xShmLock)(sqlite3_file *, int offset, int n, int flags);
	void (*xShmBarrier)(sqlite3_file *);
	int (*xShmUnmap)(sqlite3_file *, int deleteFlag);
	int (*xFetch)(sqlite3_file *, sqlite3_int64 iOfst, int iAmt, void **pp);
	int (*xUnfetch)(sqlite3_file *, sqlite3_int64 iOfst, void *p);
};

struct sqlite3_vfs {
	int iVersion;
	int szOsFile;
	int mxPathname;
	sqlite3_vfs *pNext;
	const char *zName;
	void *pAppData;
	int (*xOpen)(sqlite3_vfs *, const char *zName, sqlite3_file *, int flags, int *pOutFlags);
	int (*xDelete)(sqlite3_vfs *, const char *zName, int syncDir);
	int (*xAccess)(sqlite3_vfs *, const char *zName, int flags, int *pResOut);
	int (*xFullPathname)(sqlite3_vfs *, const char *zName, int nOut, char *zOut);
	void *(*xDlOpen)(sqlite3_vfs *, const char *zFilename);
	void (*xDlError)(sqlite3_vfs *, int nByte, char *zErrMsg);
	void (*(*xDlSym)(sqlite3_vfs *, void *, const char *zSymbol))(void);
	void (*xDlClose)(sqlite3_vfs *, void *);
	int (*xRandomness)(sqlite3_vfs *, int nByte, char *zOut);
	int (*xSleep)(sqlite3_vfs *, int microseconds);
	int (*xCurrentTime)(sqlite3_vfs *, double *);
	int (*xGetLastError)(sqlite3_vfs *, int, char *);
	int (*xCurrentTimeInt64)(sqlite3_vfs *, sqlite3_int64 *);
	int (*xSetSystemCall)(sqlite3_vfs *, const char *zName, sqlite3_syscall_ptr);
	sqlite3_syscall_ptr (*xGetSystemCall)(sqlite3_vfs *, const char *zName);
	const char *(*xNextSystemCall)(sqlite3_vfs *, const char *zName);
};

#define SQLITE_OK 0
#define SQLITE_ERROR 1
#define SQLITE_NOMEM 7
#define SQLITE_OPEN_WAL 0x00080000

extern sqlite3_vfs *sqlite3_vfs_find(const char *zVfsName) __attribute__((weak));
extern int sqlite3_vfs_register(sqlite3_vfs *, int makeDflt) __attribute__((weak));

// WAL_FRAME_HEADER is the size of a frame's header; bytes 4-7 of a header hold the database
// size in pages after a commit, and zero in every frame but a transaction's last.
#define WAL_FRAME_HEADER 24
// WAL_BUFFER_MAX bounds what is gathered: a transaction larger than this (a migration, a big
// deletion) writes in pieces of about this size. The unix VFS writes at most 128 KiB - 1 bytes
// per call (it masks the length with 0x1ffff), so a piece must stay below that; it holds
// a typical message's frames, and one frame of the largest page size.
#define WAL_BUFFER_MAX (120 << 10)

static sqlite3_vfs *base_vfs;

typedef struct walbuf_file {
	sqlite3_file file; // pMethods: walbuf_methods, or the real file's own for other files
	sqlite3_file *real; // the base VFS's file, in the memory after this struct
	unsigned char *buf;
	int len, cap;
	sqlite3_int64 off;      // file offset of buf[0]
	sqlite3_int64 hiwater;  // end of everything written since the log's header was last written
	sqlite3_int64 commit_header; // offset of a commit frame's header written last, or -1
} walbuf_file;

static int walbuf_flush(walbuf_file *f) {
	if (f->len == 0) return SQLITE_OK;
	int rc = f->real->pMethods->xWrite(f->real, f->buf, f->len, f->off);
	// On failure the gathered frames are dropped: the error goes back to SQLite, which
	// abandons the transaction they belong to, and frames past the log's last commit are never
	// read.
	f->len = 0;
	return rc;
}

// walbuf_write_through writes what is gathered, then data, unbuffered.
static int walbuf_write_through(walbuf_file *f, const void *data, int amt, sqlite3_int64 ofst) {
	f->commit_header = -1; // whatever commit frame was pending is in the file with this
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	rc = f->real->pMethods->xWrite(f->real, data, amt, ofst);
	if (ofst == 0) f->hiwater = amt;
	else if (ofst + amt > f->hiwater) f->hiwater = ofst + amt;
	return rc;
}

// walbuf_grow makes the buffer hold at least want bytes; it returns 0 when no memory could be
// had.
static int walbuf_grow(walbuf_file *f, int want) {
	if (want <= f->cap) return 1;
	int cap = f->cap ? f->cap : 64 << 10;
	while (cap < want) cap *= 2;
	unsigned char *buf = realloc(f->buf, cap);
	if (buf == NULL) return 0;
	f->buf = buf;
	f->cap = cap;
	return 1;
}

static int walbuf_write(sqlite3_file *pf, const void *data, int amt, sqlite3_int64 ofst) {
	walbuf_file *f = (walbuf_file *)pf;
	if (amt > WAL_BUFFER_MAX || ofst == 0 || ofst < f->hiwater || (f->len > 0 && ofst != f->off + f->len)) {
		// The log's header (a restarted log), or a write over frames already written (SQLite
		// rewriting a page or checksums within a transaction): in order, unbuffered.
		return walbuf_write_through(f, data, amt, ofst);
	}
	// The page of a commit frame whose header was the last write: it completes the transaction.
	// (A full buffer may have been written out between the two.)
	int completes_commit = f->commit_header >= 0 && ofst == f->commit_header + WAL_FRAME_HEADER;
	if (f->len + amt > WAL_BUFFER_MAX) {
		int rc = walbuf_flush(f);
		if (rc != SQLITE_OK) return rc;
	}
	if (!walbuf_grow(f, f->len + amt)) return walbuf_write_through(f, data, amt, ofst);
	if (f->len == 0) f->off = ofst;
	memcpy(f->buf + f->len, data, amt);
	f->len += amt;
	f->hiwater = ofst + amt;
	if (completes_commit) {
		// Everything of the transaction goes to the file now, before SQLite makes the commit
		// visible.
		f->commit_header = -1;
		return walbuf_flush(f);
	}
	f->commit_header = -1;
	if (amt == WAL_FRAME_HEADER) {
		const unsigned char *h = data;
		if (h[4] | h[5] | h[6] | h[7]) f->commit_header = ofst;
	}
	return SQLITE_OK;
}

static int walbuf_close(sqlite3_file *pf) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	int rc2 = f->real->pMethods->xClose(f->real);
	free(f->buf);
	f->buf = NULL;
	f->cap = 0;
	return rc != SQLITE_OK ? rc : rc2;
}

static int walbuf_read(sqlite3_file *pf, void *data, int amt, sqlite3_int64 ofst) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xRead(f->real, data, amt, ofst);
}

static int walbuf_truncate(sqlite3_file *pf, sqlite3_int64 size) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	if (size < f->hiwater) f->hiwater = size;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int walbuf_sync(sqlite3_file *pf, int flags) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xSync(f->real, flags);
}

static int walbuf_file_size(sqlite3_file *pf, sqlite3_int64 *size) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xFileSize(f->real, size);
}

static int walbuf_lock(sqlite3_file *pf, int l) {
	walbuf_file *f = (walbuf_file *)pf;
	return f->real->pMethods->xLock(f->real, l);
}

static int walbuf_unlock(sqlite3_file *pf, int l) {
	walbuf_file *f = (walbuf_file *)pf;
	return f->real->pMethods->xUnlock(f->real, l);
}

static int walbuf_check_reserved_lock(sqlite3_file *pf, int *out) {
	walbuf_file *f = (walbuf_file *)pf;
	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int walbuf_file_control(sqlite3_file *pf, int op, void *arg) {
	walbuf_file *f = (walbuf_file *)pf;
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int walbuf_sector_size(sqlite3_file *pf) {
	walbuf_file *f = (walbuf_file *)pf;
	return f->real->pMethods->xSectorSize(f->real);
}

static int walbuf_device_characteristics(sqlite3_file *pf) {
	walbuf_file *f = (walbuf_file *)pf;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

// The log file has no shared memory and is not memory-mapped, so SQLite does not call these
// on it; they pass on what the base file would answer, as far as its methods' version has them.
#define SQLITE_IOERR 10

static int walbuf_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp) {
	walbuf_file *f = (walbuf_file *)pf;
	if (f->real->pMethods->iVersion < 2) return SQLITE_IOERR;
	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int walbuf_shm_lock(sqlite3_file *pf, int offset, int n, int flags) {
	walbuf_file *f = (walbuf_file *)pf;
	if (f->real->pMethods->iVersion < 2) return SQLITE_IOERR;
	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void walbuf_shm_barrier(sqlite3_file *pf) {
	walbuf_file *f = (walbuf_file *)pf;
	if (f->real->pMethods->iVersion >= 2) f->real->pMethods->xShmBarrier(f->real);
}

static int walbuf_shm_unmap(sqlite3_file *pf, int del) {
	walbuf_file *f = (walbuf_file *)pf;
	if (f->real->pMethods->iVersion < 2) return SQLITE_OK;
	return f->real->pMethods->xShmUnmap(f->real, del);
}

static int walbuf_fetch(sqlite3_file *pf, sqlite3_int64 ofst, int amt, void **pp) {
	walbuf_file *f = (walbuf_file *)pf;
	*pp = NULL; // no mapping: SQLite reads instead
	int rc = walbuf_flush(f);
	if (rc != SQLITE_OK || f->real->pMethods->iVersion < 3) return rc;
	return f->real->pMethods->xFetch(f->real, ofst, amt, pp);
}

static int walbuf_unfetch(sqlite3_file *pf, sqlite3_int64 ofst, void *p) {
	walbuf_file *f = (walbuf_file *)pf;
	if (f->real->pMethods->iVersion < 3) return SQLITE_OK;
	return f->real->pMethods->xUnfetch(f->real, ofst, p);
}

static const sqlite3_io_methods walbuf_methods = {
	3,
	walbuf_close,
	walbuf_read,
	walbuf_write,
	walbuf_truncate,
	walbuf_sync,
	walbuf_file_size,
	walbuf_lock,
	walbuf_unlock,
	walbuf_check_reserved_lock,
	walbuf_file_control,
	walbuf_sector_size,
	walbuf_device_characteristics,
	walbuf_shm_map,
	walbuf_shm_lock,
	walbuf_shm_barrier,
	walbuf_shm_unmap,
	walbuf_fetch,
	walbuf_unfetch,
};

static int walbuf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags) {
	(void)vfs;
	if (!(flags & SQLITE_OPEN_WAL)) {
		// Every other file is the base VFS's own, in the memory SQLite gave us.
		return base_vfs->xOpen(base_vfs, name, pf, flags, out_flags);
	}
	walbuf_file *f = (walbuf_file *)pf;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	f->commit_header = -1;
	int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
	if (f->real->pMethods == NULL) {
		f->file.pMethods = NULL; // SQLite calls xClose only on a file with methods
		return rc;
	}
	f->file.pMethods = &walbuf_methods;
	return rc;
}

static int walbuf_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
	(void)vfs;
	return base_vfs->xDelete(base_vfs, name, sync_dir);
}

static int walbuf_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
	(void)vfs;
	return base_vfs->xAccess(base_vfs, name, flags, out);
}

static int walbuf_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
	(void)vfs;
	return base_vfs->xFullPathname(base_vfs, name, n, out);
}

static void *walbuf_dl_open(sqlite3_vfs *vfs, const char *name) {
	(void)vfs;
	return base_vfs->xDlOpen(base_vfs, name);
}

static void walbuf_dl_error(sqlite3_vfs *vfs, int n, char *msg) {
	(void)vfs;
	base_vfs->xDlError(base_vfs, n, msg);
}

static void (*walbuf_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void) {
	(void)vfs;
	return base_vfs->xDlSym(base_vfs, h, sym);
}

static void walbuf_dl_close(sqlite3_vfs *vfs, void *h) {
	(void)vfs;
	base_vfs->xDlClose(base_vfs, h);
}

static int walbuf_randomness(sqlite3_vfs *vfs, int n, char *out) {
	(void)vfs;
	return base_vfs->xRandomness(base_vfs, n, out);
}

static int walbuf_sleep(sqlite3_vfs *vfs, int us) {
	(void)vfs;
	return base_vfs->xSleep(base_vfs, us);
}

static int walbuf_current_time(sqlite3_vfs *vfs, double *t) {
	(void)vfs;
	return base_vfs->xCurrentTime(base_vfs, t);
}

static int walbuf_get_last_error(sqlite3_vfs *vfs, int n, char *msg) {
	(void)vfs;
	return base_vfs->xGetLastError(base_vfs, n, msg);
}

static int walbuf_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *t) {
	(void)vfs;
	return base_vfs->xCurrentTimeInt64(base_vfs, t);
}

static sqlite3_vfs walbuf_vfs;

// myelin_walbuf_register registers the VFS under name, over the default VFS. It returns
// SQLITE_OK, or an error when SQLite or its default VFS is missing (the caller then uses the
// default VFS as it is).
int myelin_walbuf_register(const char *name) {
	if (sqlite3_vfs_find == NULL || sqlite3_vfs_register == NULL) return SQLITE_ERROR;
	sqlite3_vfs *b = sqlite3_vfs_find(NULL);
	if (b == NULL || b->iVersion < 2 || b->xCurrentTimeInt64 == NULL) return SQLITE_ERROR;
	base_vfs = b;
	walbuf_vfs.iVersion = 2;
	walbuf_vfs.szOsFile = (int)sizeof(walbuf_file) + b->szOsFile;
	walbuf_vfs.mxPathname = b->mxPathname;
	walbuf_vfs.zName = name;
	walbuf_vfs.xOpen = walbuf_open;
	walbuf_vfs.xDelete = walbuf_delete;
	walbuf_vfs.xAccess = walbuf_access;
	walbuf_vfs.xFullPathname = walbuf_full_pathname;
	walbuf_vfs.xDlOpen = walbuf_dl_open;
	walbuf_vfs.xDlError = walbuf_dl_error;
	walbuf_vfs.xDlSym = walbuf_dl_sym;
	walbuf_vfs.xDlClose = walbuf_dl_close;
	walbuf_vfs.xRandomness = walbuf_randomness;
	walbuf_vfs.xSleep = walbuf_sleep;
	walbuf_vfs.xCurrentTime = walbuf_current_time;
	walbuf_vfs.xGetLastError = walbuf_get_last_error;
	walbuf_vfs.xCurrentTimeInt64 = walbuf_current_time_int64;
	return sqlite3_vfs_register(&walbuf_vfs, 0);
}
