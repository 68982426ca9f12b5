package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/datamap/residuetest"
)

func randomValue(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// A member's values (address, name, phone, addresses; in the account, the newsletter,
// the consent ledger, the outbox and the audit log) never reach the engine's files in
// plain text, so after an erasure none of them is on disk, in table files, dead rows
// or WAL; and once the key epoch has passed, the member's wrapped data key, which PostgreSQL's dead
// rows still keep, opens with no key the node holds.
func TestErasedMemberUnreadableOnDisk(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		email := randomValue("sealed.") + "@example.org"
		var n [4]byte
		_, _ = rand.Read(n[:])
		phone := fmt.Sprintf("+33 6 %08d", uint32(n[0])<<16|uint32(n[1])<<8|uint32(n[2]))
		home := randomValue("12 rue ") + ", Lyon"
		business := randomValue("Office ") + ", Paris"
		name := randomValue("Name ")
		id, token := h.Member(email, pw, map[string]any{"name": name, "phone": phone, "home_address": home, "business_address": business})
		// The member joins the newsletter (subscribers, the kept audience, consent
		// evidence) and so every holder has something of them.
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, token); r.Status != http.StatusOK {
			t.Fatalf("consents = %d %s", r.Status, r.Body)
		}
		if _, err := h.App.Newsletter().Lookup(ctx, email); err != nil {
			t.Fatalf("the member is not on the list: %v", err)
		}
		var wrapped []byte
		var epoch int64
		if err := h.App.DB().QueryRowContext(ctx, `SELECT wrapped, epoch FROM vault_keys WHERE subject_id = $1`, id).Scan(&wrapped, &epoch); err != nil {
			t.Fatal(err)
		}
		// Live, the values are in the database only sealed.
		if found := residuetest.RawFindings(t, h.App.DB(), email, name, phone, home, business); len(found) > 0 {
			t.Fatalf("a live member's sealed fields are on disk in plain text: %v", found)
		}
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		if found := residuetest.RawFindings(t, h.App.DB(), email, name, phone, home, business); len(found) > 0 {
			t.Fatalf("after erasure: %v", found)
		}

		to, err := h.App.Vault().RotateNow(ctx)
		if err != nil || to != epoch+1 {
			t.Fatalf("rotate: %d, %v", to, err)
		}
		for e := int64(0); e <= to+2; e++ {
			if _, err := h.App.Vault().Unwrap(id, wrapped, e); err == nil {
				t.Fatalf("after the epoch, the erased member's wrapped key opens at epoch %d", e)
			}
		}
	})
}
