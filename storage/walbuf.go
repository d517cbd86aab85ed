package storage

/*
int myelin_walbuf_register(const char *name);
*/
import "C"

import "sync"

// walBufVFS is the SQLite VFS the writer opens the database with: the default VFS, except that
// a transaction's write-ahead-log frames reach the file in one write instead of two per page
// (walbuf.c).
const walBufVFS = "myelin-walbuf"

// registerWalBuf registers walBufVFS once; it reports false if SQLite refused, in which case
// the writer uses the default VFS.
var registerWalBuf = sync.OnceValue(func() bool {
	return C.myelin_walbuf_register(C.CString(walBufVFS)) == 0 // the VFS keeps the name for good
})
