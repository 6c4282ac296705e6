//go:build !unix

package lake

import "errors"

// lockFile: DirStore's conditional writes need flock, a Unix call.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("conditional writes need a Unix file system lock (flock)")
}
