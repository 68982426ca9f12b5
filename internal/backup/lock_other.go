//go:build !unix

package backup

import (
	"errors"
	"os"
)

func flock(*os.File) error {
	return errors.New("backup: locking the SQLite database needs a Unix system")
}
