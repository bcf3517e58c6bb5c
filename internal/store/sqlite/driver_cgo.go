//go:build cgo_sqlite

package sqlite

import (
	"database/sql"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// DriverName is the cgo driver (github.com/mattn/go-sqlite3), registered
// with the pragmas its DSN cannot carry. Building with it needs a C
// compiler and -tags 'cgo_sqlite sqlite_fts5'.
const DriverName = "trail-sqlite3"

func init() {
	sql.Register(DriverName, &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
			return err
		},
	})
}

// WriterDSN opens path for the single writer: WAL, synchronous=FULL (a
// commit survives power loss), immediate transactions, a page cache of
// cacheBytes, and temporary files (statement journals) in memory.
func WriterDSN(path string, cacheBytes int) string {
	return "file:" + path +
		"?_txlock=immediate&_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_mutex=no" +
		fmt.Sprintf("&_cache_size=-%d", cacheBytes>>10)
}

func readerDSN(path string) string {
	return "file:" + path + "?_busy_timeout=10000&_query_only=1&_cache_size=-16384&_mutex=no"
}
