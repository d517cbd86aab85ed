package media

import "os"

// OpenStoredContent opens the stored file of a content hash in a media directory
// (<data_dir>/media), read-only and without starting a media repository: for offline tools such
// as `myelin export-user`, which must not touch the temporary files of a server running at the
// same time, as New would.
func OpenStoredContent(dir, hash string) (*os.File, error) {
	return (&fileStore{dir: dir}).open(hash)
}
