package datamap

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"steward/internal/store"
)

// SelectSection reads the exportable columns of t for the rows matching where (a SQL
// condition with $N placeholders) and returns them as a Section. Holders use it for
// their Export.
func SelectSection(ctx context.Context, q store.Querier, t Table, where string, args ...any) (Section, error) {
	return selectSection(ctx, q, t, nil, where, args...)
}

// Select is SelectSection for rows of the subject, whose sealed columns it opens with
// the subject's key.
func (s Subject) Select(ctx context.Context, q store.Querier, t Table, where string, args ...any) (Section, error) {
	return selectSection(ctx, q, t, s.Key, where, args...)
}

// SelectParts is SelectParts for the subject, opening sealed columns.
func (s Subject) SelectParts(ctx context.Context, q store.Querier, parts ...Part) ([]Section, error) {
	out := make([]Section, 0, len(parts))
	for _, p := range parts {
		sec, err := selectSection(ctx, q, p.Table, s.Key, p.Where, s.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, nil
}

func selectSection(ctx context.Context, q store.Querier, t Table, key Opener, where string, args ...any) (Section, error) {
	sec := Section{Table: t.Name}
	var cols []Column
	for _, c := range t.Columns {
		if c.Withheld != "" {
			continue
		}
		cols = append(cols, c)
		sec.Columns = append(sec.Columns, c.Name)
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = store.QuoteIdent(c.Name)
	}
	query := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(quoted, ", "), store.QuoteIdent(t.Name), where)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return sec, fmt.Errorf("datamap: export %s: %w", t.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return sec, fmt.Errorf("datamap: export %s: %w", t.Name, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
			if cols[i].Sealed && v.Valid {
				if key == nil {
					return sec, fmt.Errorf("datamap: export %s.%s: a sealed column, and no key of the subject to open it", t.Name, cols[i].Name)
				}
				var err error
				if row[i], err = key.OpenText(cols[i].SealLabel(t.Name), v.String); err != nil {
					return sec, fmt.Errorf("datamap: export %s.%s: %w", t.Name, cols[i].Name, err)
				}
			}
			if cols[i].Time && v.Valid {
				if ms, err := strconv.ParseInt(v.String, 10, 64); err == nil {
					row[i] = time.UnixMilli(ms).UTC().Format(time.RFC3339)
				}
			}
		}
		sec.Rows = append(sec.Rows, row)
	}
	return sec, rows.Err()
}

// Part is one table of a holder's export and the condition selecting the subject's rows
// (with the subject's id as $1).
type Part struct {
	Table Table
	Where string
}

// SelectParts runs SelectSection for every part with id as $1.
func SelectParts(ctx context.Context, q store.Querier, id string, parts ...Part) ([]Section, error) {
	out := make([]Section, 0, len(parts))
	for _, p := range parts {
		sec, err := SelectSection(ctx, q, p.Table, p.Where, id)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, nil
}
