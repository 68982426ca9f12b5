package store

// KeptStatements is how many statements the SQLite writer keeps prepared.
func KeptStatements(db *DB) int {
	db.wstmts.mu.Lock()
	defer db.wstmts.mu.Unlock()
	return db.wstmts.order.Len()
}

// KeepStatements replaces the writer's statement cache by one of max statements.
func KeepStatements(db *DB, max int) {
	db.wstmts.close()
	db.wstmts = newStmtCache(db.write, max)
}
