package sqlite

import (
	"fmt"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
)

// DriverName is the database/sql driver the store uses: the pure-Go
// modernc.org/sqlite, so Trail builds with nothing but Go.
const DriverName = "sqlite"

// WriterDSN opens path for the single writer: WAL, synchronous=FULL (a
// commit survives power loss), immediate transactions, a page cache of
// cacheBytes, and temporary files (statement journals) in memory.
func WriterDSN(path string, cacheBytes int) string {
	return "file:" + path +
		"?_txlock=immediate&_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL" +
		fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=temp_store(MEMORY)", cacheBytes>>10)
}

func readerDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_query_only=1&_pragma=cache_size(-16384)"
}
