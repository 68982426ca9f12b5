package app_test

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/server"
)

// The callers the authorization matrix tries every route as. The owner is member A;
// every route that names a resource names one of A's (its file, session, consent
// event, the campaign marketing drafted, A's public profile), so that every other
// member, the child, the guardian and each staff role try A's resources.
type actor string

const (
	anon      actor = "anon"
	other     actor = "member B"
	child     actor = "child"
	guardian  actor = "guardian"
	admin     actor = "admin"
	marketing actor = "marketing"
	support   actor = "support"
	dpo       actor = "dpo"
	auditor   actor = "auditor"
	owner     actor = "member A" // last: what it does to A's resources, it does after the others tried
)

var actors = []actor{anon, other, child, guardian, admin, marketing, support, dpo, auditor, owner}

// members are the actors with an account; staff are those that hold a role (the
// role of the same name).
var (
	members = actors[1:]
	staff   = []actor{admin, marketing, support, dpo, auditor}
)

// answers is the expected answer of a route per actor: a status, and for a redirect
// the path it leads to ("303 /login").
type answers map[actor]string

// everyone answers all alike.
func everyone(s string) answers {
	a := answers{}
	for _, c := range actors {
		a[c] = s
	}
	return a
}

// own is a route on the caller's own account: anonymous gets anonAnswer, and every
// member gets s, each about themselves.
func own(s, anonAnswer string) answers {
	a := everyone(s)
	a[anon] = anonAnswer
	return a
}

// owned is a route on one of A's resources: A gets s, anonymous anonAnswer, and every
// other member, staff included, the same "not found" as for a resource that does not
// exist.
func owned(s, anonAnswer string) answers {
	a := everyone("404")
	a[anon], a[owner] = anonAnswer, s
	return a
}

// guardianOf is a route on the child's account for its guardian: the guardian gets s,
// anonymous anonAnswer, and everyone else, the child and A included, "not found".
func guardianOf(s, anonAnswer string) answers {
	a := everyone("404")
	a[anon], a[guardian] = anonAnswer, s
	return a
}

// staffOnly is a staff route: admin and the roles get s, other members refused,
// anonymous anonAnswer.
func staffOnly(s, anonAnswer, refused string, roles ...actor) answers {
	a := everyone(refused)
	a[anon], a[admin] = anonAnswer, s
	for _, r := range roles {
		a[r] = s
	}
	return a
}

// probe is how a route is tried: the path (with {file}, {session}, {receipt},
// {campaign}, {request}, {hold}, {erasure} or {owner} for A's resources), the body of a request that
// has one (JSON for the API, a form for the pages), and the answers expected.
type probe struct {
	path string // the pattern's path when empty
	body string
	want answers
}

const toLogin = "303 /login"

// authz is the authorization matrix: one entry per route the site registers, keyed by
// its pattern. A route added without an entry fails TestAuthorizationMatrix.
var authz = map[string]probe{
	// The API: accounts and sessions.
	"POST /api/v1/accounts":                 {body: `{}`, want: everyone("400")},
	"POST /api/v1/verifications":            {body: `{}`, want: everyone("400")},
	"GET /api/v1/guardian-consents":         {want: everyone("400")},
	"POST /api/v1/guardian-consents":        {body: `{}`, want: everyone("400")},
	"GET /api/v1/guardian-purposes":         {want: everyone("400")},
	"POST /api/v1/guardian-purposes":        {body: `{}`, want: everyone("400")},
	"POST /api/v1/sessions":                 {body: `{}`, want: everyone("400")},
	"GET /api/v1/sessions":                  {want: own("200", "401")},
	"DELETE /api/v1/sessions":               {want: own("200", "401")},
	"DELETE /api/v1/sessions/current":       {want: own("204", "401")},
	"DELETE /api/v1/sessions/others":        {want: own("200", "401")},
	"DELETE /api/v1/sessions/{id}":          {path: "/api/v1/sessions/{session}", want: owned("204", "401")},
	"POST /api/v1/password-resets":          {body: `{}`, want: everyone("400")},
	"POST /api/v1/password-resets/confirm":  {body: `{}`, want: everyone("400")},
	"GET /api/v1/me":                        {want: own("200", "401")},
	"PATCH /api/v1/me":                      {body: `{}`, want: own("200", "401")},
	"DELETE /api/v1/me":                     {body: `{}`, want: own("400", "401")},
	"PUT /api/v1/me/password":               {body: `{}`, want: own("400", "401")},
	"GET /api/v1/me/export":                 {want: own("200", "401")},
	"GET /api/v1/me/children":               {want: own("200", "401")},
	"GET /api/v1/me/children/{id}":          {path: "/api/v1/me/children/{child}", want: guardianOf("200", "401")},
	"GET /api/v1/me/children/{id}/consents": {path: "/api/v1/me/children/{child}/consents", want: guardianOf("200", "401")},
	"PUT /api/v1/me/children/{id}/consents": {path: "/api/v1/me/children/{child}/consents", body: `{}`, want: guardianOf("200", "401")},
	"GET /api/v1/me/children/{id}/export":   {path: "/api/v1/me/children/{child}/export", want: guardianOf("200", "401")},
	"DELETE /api/v1/me/children/{id}":       {path: "/api/v1/me/children/{child}", body: `{}`, want: guardianOf("400", "401")},
	"GET /api/v1/me/activity":               {want: own("200", "401")},
	"GET /api/v1/erasures/{id}":             {path: "/api/v1/erasures/{erasure}", want: everyone("200")}, // its random id is the capability
	"GET /api/v1/members/{id}":              {path: "/api/v1/members/{owner}", want: everyone("200")},    // A chose to show a field
	"POST /api/v1/me/files":                 {path: "/api/v1/me/files?name=a.txt", body: `hello`, want: own("201", "401")},
	"GET /api/v1/me/files":                  {want: own("200", "401")},
	"GET /api/v1/me/files/{id}":             {path: "/api/v1/me/files/{file}", want: owned("200", "401")},
	"DELETE /api/v1/me/files/{id}":          {path: "/api/v1/me/files/{file}", want: owned("204", "401")},
	"GET /api/v1/me/file-access":            {want: own("200", "401")},
	"GET /api/v1/purposes":                  {want: everyone("200")},
	"GET /api/v1/me/consents":               {want: own("200", "401")},
	"PUT /api/v1/me/consents":               {body: `{}`, want: own("200", "401")}, // no choice: no change
	"GET /api/v1/me/consents/history":       {want: own("200", "401")},
	"GET /api/v1/me/consents/receipts/{id}": {path: "/api/v1/me/consents/receipts/{receipt}", want: owned("200", "401")},
	"GET /.well-known/steward-receipt-key":  {want: everyone("200")},
	"GET /healthz":                          {want: everyone("200")},
	"GET /readyz":                           {want: everyone("200")},
	"POST /api/v1/newsletter":               {body: `{}`, want: everyone("400")},
	"POST /api/v1/newsletter/confirm":       {body: `{}`, want: everyone("400")},
	"POST /unsubscribe/one-click":           {want: everyone("400")},
	"GET /b/o.gif":                          {want: everyone("200")},
	"GET /b.gif":                            {want: everyone("400")}, // no site: refused, whoever asks
	"POST /api/v1/events":                   {body: `{}`, want: everyone("400")},
	"GET /static/steward-analytics.js":      {want: everyone("200")},
	"GET /static/steward-consent.js":        {want: everyone("200")},
	"GET /api/v1/me/cookies":                {want: own("200", "401")},
	"PUT /api/v1/me/cookies":                {body: `{"preferences":false,"statistics":false,"marketing":false}`, want: own("200", "401")},
	"GET /api/v1/staff/campaigns":           {want: staffOnly("200", "401", "403", marketing)},
	"GET /api/v1/staff/processor-notices":   {want: staffOnly("200", "401", "403", dpo)},
	"GET /api/v1/staff/processor-notices/{id}": {path: "/api/v1/staff/processor-notices/none",
		want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/processor-notices/{id}/done": {path: "/api/v1/staff/processor-notices/none/done",
		want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/campaigns":            {body: `{}`, want: staffOnly("400", "401", "403", marketing)},
	"GET /api/v1/staff/campaigns/{id}":        {path: "/api/v1/staff/campaigns/{campaign}", want: staffOnly("200", "401", "403", marketing)},
	"POST /api/v1/staff/campaigns/{id}/send":  {path: "/api/v1/staff/campaigns/{campaign}/send", want: staffOnly("202", "401", "403", marketing)},
	"PATCH /api/v1/staff/campaigns/{id}":      {path: "/api/v1/staff/campaigns/{campaign}", body: `{}`, want: staffOnly("200", "401", "403", marketing)},
	"DELETE /api/v1/staff/campaigns/{id}":     {path: "/api/v1/staff/campaigns/{campaign}", want: staffOnly("204", "401", "403", marketing)},
	"POST /api/v1/staff/campaigns/{id}/test":  {path: "/api/v1/staff/campaigns/{campaign}/test", want: staffOnly("200", "401", "403", marketing)},
	"GET /api/v1/staff/campaigns/{id}/visits": {path: "/api/v1/staff/campaigns/{campaign}/visits", want: staffOnly("200", "401", "403", marketing, dpo)},
	"GET /api/v1/staff/analytics/campaigns":   {want: staffOnly("200", "401", "403", marketing, dpo)},
	"POST /api/v1/staff/subscribers/import":   {body: `{}`, want: staffOnly("400", "401", "403", marketing)},
	"GET /api/v1/staff/consent-conflicts":     {want: staffOnly("200", "401", "403", dpo, support)},
	"POST /api/v1/requests":                   {body: `{}`, want: everyone("400")},
	"POST /api/v1/requests/confirm":           {body: `{}`, want: everyone("400")},
	"GET /api/v1/me/requests":                 {want: own("200", "401")},
	"POST /api/v1/me/requests":                {body: `{}`, want: own("400", "401")},
	"GET /api/v1/me/requests/{id}":            {path: "/api/v1/me/requests/{request}", want: owned("200", "401")},
	"POST /api/v1/me/requests/{id}/withdraw":  {path: "/api/v1/me/requests/{request}/withdraw", want: owned("200", "401")},
	"GET /api/v1/staff/requests":              {want: staffOnly("200", "401", "403", dpo)},
	"GET /api/v1/staff/requests/{id}":         {path: "/api/v1/staff/requests/{request}", want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/requests/{id}/state":  {path: "/api/v1/staff/requests/{request}/state", body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"POST /api/v1/staff/requests/{id}/extension": {path: "/api/v1/staff/requests/{request}/extension", body: `{}`,
		want: staffOnly("400", "401", "403", dpo)},
	// A's request is a member's: it holds no identity document.
	// A's request is not a rectification: 409 for the dpo.
	"POST /api/v1/staff/requests/{id}/rectification": {path: "/api/v1/staff/requests/{request}/rectification", body: `{}`,
		want: staffOnly("409", "401", "403", dpo)},
	"POST /api/v1/staff/requests/{id}/identity": {path: "/api/v1/staff/requests/{request}/identity", body: `{}`,
		want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/requests/{id}/document": {path: "/api/v1/staff/requests/{request}/document", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/requests/download":           {body: `{}`, want: everyone("400")},
	// Legal holds: the member's own, and the DPO's desk.
	"GET /api/v1/me/holds":     {want: own("200", "401")},
	"POST /api/v1/staff/holds": {body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/holds":  {want: staffOnly("200", "401", "403", dpo)},
	// Retention: the rules and their runs, and a run by hand.
	"GET /api/v1/staff/retention":      {want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/retention/run": {want: staffOnly("200", "401", "403", dpo)},
	"GET /api/v1/staff/holds/{hold}":   {path: "/api/v1/staff/holds/{hold}", want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/holds/{hold}/release": {path: "/api/v1/staff/holds/{hold}/release",
		want: staffOnly("200", "401", "403", dpo)},
	// The registers of disclosures and breaches: the member's own disclosures, the DPO's registers.
	"GET /api/v1/me/disclosures":                   {want: own("200", "401")},
	"GET /api/v1/staff/disclosures":                {want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/disclosures":               {body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/disclosures/{id}":           {path: "/api/v1/staff/disclosures/none", want: staffOnly("404", "401", "403", dpo)},
	"GET /api/v1/staff/disclosures/{id}/document":  {path: "/api/v1/staff/disclosures/none/document", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/disclosures/{id}/lift":     {path: "/api/v1/staff/disclosures/none/lift", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/disclosures/{id}/postpone": {path: "/api/v1/staff/disclosures/none/postpone", body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/breaches":                   {want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/breaches":                  {body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/breaches/{id}":              {path: "/api/v1/staff/breaches/none", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/breaches/{id}/members":     {path: "/api/v1/staff/breaches/none/members", body: `{}`, want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/breaches/{id}/report":      {path: "/api/v1/staff/breaches/none/report", body: `{}`, want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/breaches/{id}/notify":      {path: "/api/v1/staff/breaches/none/notify", want: staffOnly("404", "401", "403", dpo)},
	// Access grants and the staff member-view: support reads A only under a grant A
	// approved (none here: refused), the DPO and admin without one.
	"GET /api/v1/me/staff-access": {want: own("200", "401")},
	"POST /api/v1/me/staff-access/{id}/decision": {path: "/api/v1/me/staff-access/none/decision", body: `{"approve":true}`,
		want: own("404", "401")},
	"POST /api/v1/me/staff-access/{id}/revoke": {path: "/api/v1/me/staff-access/none/revoke", want: own("404", "401")},
	"GET /api/v1/staff/members/{id}":           {path: "/api/v1/staff/members/{owner}", want: staffOnly("200", "401", "403", dpo)},
	"GET /api/v1/staff/members/{id}/files/{file}": {path: "/api/v1/staff/members/{owner}/files/{file}",
		want: staffOnly("200", "401", "403", dpo)},
	"GET /api/v1/staff/grants":  {want: staffOnly("200", "401", "403", support, dpo)},
	"POST /api/v1/staff/grants": {body: `{}`, want: staffOnly("400", "401", "403", support)},
	"POST /api/v1/staff/grants/{id}/decision": {path: "/api/v1/staff/grants/none/decision", body: `{"approve":true}`,
		want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/grants/{id}/revoke": {path: "/api/v1/staff/grants/none/revoke", want: staffOnly("404", "401", "403", support, dpo)},
	// The second factor, re-authentication, staff management and the audit log. A
	// second factor is set up by staff only (every staff actor has one already).
	"GET /api/v1/me/second-factor":                   {want: own("200", "401")},
	"POST /api/v1/me/second-factor":                  {want: staffAs(own("403", "401"), "409")},
	"POST /api/v1/me/second-factor/confirm":          {body: `{}`, want: own("400", "401")},
	"POST /api/v1/me/second-factor/recovery-codes":   {want: staffAs(own("409", "401"), "200")},
	"POST /api/v1/sessions/current/second-factor":    {body: `{}`, want: own("400", "401")},
	"POST /api/v1/sessions/current/reauth":           {body: `{}`, want: own("400", "401")},
	"GET /api/v1/staff/people":                       {want: staffOnly("200", "401", "403")},
	"POST /api/v1/staff/people":                      {body: `{}`, want: staffOnly("400", "401", "403")},
	"DELETE /api/v1/staff/people/{id}/roles/{role}":  {path: "/api/v1/staff/people/none/roles/dpo", want: staffOnly("404", "401", "403")},
	"DELETE /api/v1/staff/people/{id}/second-factor": {path: "/api/v1/staff/people/none/second-factor", want: staffOnly("404", "401", "403")},
	"GET /api/v1/staff/audit":                        {want: staffOnly("200", "401", "403", auditor)},
	"POST /api/v1/staff/audit/verify":                {want: staffOnly("202", "401", "403", auditor)},
	"/api/":                                          {path: "/api/v1/nothing-here", want: everyone("404")},

	// The pages.
	"GET /{$}":                  {path: "/", want: everyone("200")},
	"GET /static/":              {path: "/static/style.css", want: everyone("200")},
	"GET /register":             {want: everyone("200")},
	"POST /register":            {want: everyone("400")},
	"GET /register/sent":        {want: everyone("200")},
	"GET /verify":               {want: everyone("400")},
	"POST /verify":              {want: everyone("400")},
	"GET /verify/done":          {want: everyone("200")},
	"GET /verify/resend":        {want: everyone("200")},
	"POST /verify/resend":       {want: everyone("400")},
	"GET /verify/resend/sent":   {want: everyone("200")},
	"GET /guardian":             {want: everyone("400")},
	"POST /guardian":            {want: everyone("400")},
	"GET /guardian/done":        {want: everyone("200")},
	"GET /guardian/purpose":     {want: everyone("400")},
	"POST /guardian/purpose":    {want: everyone("400")},
	"GET /login":                {want: everyone("200")},
	"POST /login":               {want: everyone("400")},
	"POST /logout":              {want: everyone("303 /")},
	"GET /password/forgot":      {want: everyone("200")},
	"POST /password/forgot":     {want: everyone("400")},
	"GET /password/forgot/sent": {want: everyone("200")},
	"GET /password/reset":       {want: everyone("400")},
	"POST /password/reset":      {want: everyone("400")},

	"GET /account":               {want: own("200", toLogin)},
	"POST /account":              {want: own("303 /account?saved=1", toLogin)},
	"GET /account/export":        {want: own("200", toLogin)},
	"GET /account/children":      {want: own("200", toLogin)},
	"GET /account/children/{id}": {path: "/account/children/{child}", want: guardianOf("200", toLogin)},
	"POST /account/children/{id}/preferences": {path: "/account/children/{child}/preferences",
		want: guardianOf("303 /account/children/{child}?saved=1", toLogin)},
	"GET /account/children/{id}/export":      {path: "/account/children/{child}/export", want: guardianOf("200", toLogin)},
	"POST /account/children/{id}/delete":     {path: "/account/children/{child}/delete", want: guardianOf("400", toLogin)},
	"GET /account/sessions":                  {want: own("200", toLogin)},
	"POST /account/sessions/{id}/revoke":     {path: "/account/sessions/{session}/revoke", want: owned("303 /account/sessions?ended=1", toLogin)},
	"POST /account/sessions/revoke-all":      {want: own("303 /login?notice=everywhere", toLogin)},
	"POST /account/sessions/revoke-others":   {want: own("303 /account/sessions?others=1", toLogin)},
	"GET /account/password":                  {want: own("200", toLogin)},
	"POST /account/password":                 {want: own("400", toLogin)},
	"GET /account/activity":                  {want: own("200", toLogin)},
	"GET /account/files":                     {want: own("200", toLogin)},
	"POST /account/files":                    {want: own("400", toLogin)},
	"GET /account/files/{id}/download":       {path: "/account/files/{file}/download", want: owned("200", toLogin)},
	"GET /account/files/{id}/delete":         {path: "/account/files/{file}/delete", want: owned("200", toLogin)},
	"POST /account/files/{id}/delete":        {path: "/account/files/{file}/delete", want: owned("303 /account/files?deleted=1", toLogin)},
	"GET /account/preferences":               {want: own("200", toLogin)},
	"POST /account/preferences":              {want: own("303 /account/preferences?saved=1", toLogin)},
	"GET /account/preferences/receipts/{id}": {path: "/account/preferences/receipts/{receipt}", want: owned("200", toLogin)},
	"GET /account/delete":                    {want: own("200", toLogin)},
	"POST /account/delete":                   {want: own("400", toLogin)},
	"GET /requests/new":                      {want: everyone("200")},
	"POST /requests/new":                     {want: everyone("400")},
	"GET /requests/sent":                     {want: everyone("200")},
	"GET /requests/confirm":                  {want: everyone("400")},
	"POST /requests/confirm":                 {want: everyone("400")},
	"GET /requests/confirmed":                {want: everyone("200")},
	"GET /account/requests":                  {want: own("200", toLogin)},
	"POST /account/requests":                 {want: own("400", toLogin)},
	"GET /account/requests/{id}":             {path: "/account/requests/{request}", want: owned("200", toLogin)},
	"POST /account/requests/{id}/withdraw":   {path: "/account/requests/{request}/withdraw", want: owned("303 /account/requests?notice=withdrawn", toLogin)},
	"GET /staff/requests":                    {want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/requests/{id}":               {path: "/staff/requests/{request}", want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/requests/{id}/state":        {path: "/staff/requests/{request}/state", want: staffOnly("400", toLogin, "403", dpo)},
	"POST /staff/requests/{id}/extend":       {path: "/staff/requests/{request}/extend", want: staffOnly("400", toLogin, "403", dpo)},
	"POST /staff/requests/{id}/identity":     {path: "/staff/requests/{request}/identity", want: staffOnly("400", toLogin, "403", dpo)},
	"POST /staff/requests/{id}/rectify":      {path: "/staff/requests/{request}/rectify", want: staffOnly("409", toLogin, "403", dpo)},
	"GET /staff/requests/{id}/document":      {path: "/staff/requests/{request}/document", want: staffOnly("404", toLogin, "403", dpo)},
	"GET /account/access":                    {want: own("200", toLogin)},
	"POST /account/access/{id}/decision":     {path: "/account/access/none/decision", want: own("400", toLogin)},
	"POST /account/access/{id}/revoke":       {path: "/account/access/none/revoke", want: own("404", toLogin)},
	"GET /staff/members":                     {want: staffOnly("200", toLogin, "403", support, dpo)},
	"GET /staff/members/{id}":                {path: "/staff/members/{owner}", want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/members/{id}/files/{file}":   {path: "/staff/members/{owner}/files/{file}", want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/grants":                      {want: staffOnly("200", toLogin, "403", support, dpo)},
	"POST /staff/grants":                     {want: staffOnly("400", toLogin, "403", support)},
	"POST /staff/grants/{id}/decision":       {path: "/staff/grants/none/decision", want: staffOnly("400", toLogin, "403", dpo)},
	"POST /staff/grants/{id}/revoke":         {path: "/staff/grants/none/revoke", want: staffOnly("404", toLogin, "403", support, dpo)},
	"GET /requests/download":                 {want: everyone("400")},
	"POST /requests/download":                {want: everyone("400")},
	"GET /erasures/{id}":                     {path: "/erasures/{erasure}", want: everyone("200")},
	"GET /members/{id}":                      {path: "/members/{owner}", want: everyone("200")},
	"GET /privacy/purposes":                  {want: everyone("200")},
	"GET /newsletter":                        {want: everyone("200")},
	"POST /newsletter":                       {want: everyone("400")},
	"GET /newsletter/sent":                   {want: everyone("200")},
	"GET /newsletter/confirm":                {want: everyone("400")},
	"POST /newsletter/confirm":               {want: everyone("400")},
	"GET /newsletter/confirmed":              {want: everyone("200")},
	"GET /unsubscribe":                       {want: everyone("400")},
	"GET /unsubscribe/test":                  {want: everyone("200")},
	"POST /unsubscribe":                      {want: everyone("400")},
	"GET /staff/campaigns":                   {want: staffOnly("200", toLogin, "403", marketing)},
	"GET /staff/analytics/campaigns":         {want: staffOnly("200", toLogin, "403", marketing, dpo)},
	"GET /staff/campaigns/new":               {want: staffOnly("200", toLogin, "403", marketing)},
	"POST /staff/campaigns/new":              {want: staffOnly("400", toLogin, "403", marketing)},
	"GET /staff/campaigns/{id}":              {path: "/staff/campaigns/{campaign}", want: staffOnly("200", toLogin, "403", marketing)},
	"POST /staff/campaigns/{id}/send":        {path: "/staff/campaigns/{campaign}/send", want: staffOnly("303 /staff/campaigns/{campaign}?started=1", toLogin, "403", marketing)},
	"GET /staff/campaigns/{id}/send":         {path: "/staff/campaigns/{campaign}/send", want: staffOnly("200", toLogin, "403", marketing)},
	"GET /staff/campaigns/{id}/edit":         {path: "/staff/campaigns/{campaign}/edit", want: staffOnly("200", toLogin, "403", marketing)},
	"POST /staff/campaigns/{id}/edit":        {path: "/staff/campaigns/{campaign}/edit", want: staffOnly("400", toLogin, "403", marketing)},
	"GET /staff/campaigns/{id}/delete":       {path: "/staff/campaigns/{campaign}/delete", want: staffOnly("200", toLogin, "403", marketing)},
	"POST /staff/campaigns/{id}/delete":      {path: "/staff/campaigns/{campaign}/delete", want: staffOnly("303 /staff/campaigns?deleted=1", toLogin, "403", marketing)},
	"POST /staff/campaigns/{id}/test":        {path: "/staff/campaigns/{campaign}/test", want: staffOnly("303 /staff/campaigns/{campaign}?tested=1", toLogin, "403", marketing)},
	"GET /staff/campaigns/{id}/preview":      {path: "/staff/campaigns/{campaign}/preview", want: staffOnly("200", toLogin, "403", marketing)},
	"/":                                      {path: "/nothing-here", want: everyone("404")},

	// A receipt in words, its file, and the public check of a receipt.
	"GET /account/preferences/receipts/{id}/download": {path: "/account/preferences/receipts/{receipt}/download", want: owned("200", toLogin)},
	"GET /receipts/verify":                            {want: everyone("200")},
	"POST /receipts/verify":                           {want: everyone("400")},

	// The DPO's legal holds.
	"GET /staff/holds":                 {want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/retention":             {want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/retention/run":        {want: staffOnly("303 /staff/retention?done=ran", toLogin, "403", dpo)},
	"POST /staff/holds":                {want: staffOnly("400", toLogin, "403", dpo)},
	"GET /staff/holds/{hold}/release":  {path: "/staff/holds/{hold}/release", want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/holds/{hold}/release": {path: "/staff/holds/{hold}/release", want: staffOnly("303 /staff/holds?done=released", toLogin, "403", dpo)},

	// The DPO's registers of disclosures and breaches.
	"GET /staff/disclosures":                {want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/disclosures":               {want: staffOnly("400", toLogin, "403", dpo)},
	"GET /staff/disclosures/{id}":           {path: "/staff/disclosures/none", want: staffOnly("404", toLogin, "403", dpo)},
	"GET /staff/disclosures/{id}/document":  {path: "/staff/disclosures/none/document", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/disclosures/{id}/lift":     {path: "/staff/disclosures/none/lift", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/disclosures/{id}/postpone": {path: "/staff/disclosures/none/postpone", want: staffOnly("404", toLogin, "403", dpo)},
	"GET /staff/breaches":                   {want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/breaches":                  {want: staffOnly("400", toLogin, "403", dpo)},
	"GET /staff/breaches/{id}":              {path: "/staff/breaches/none", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/breaches/{id}/members":     {path: "/staff/breaches/none/members", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/breaches/{id}/report":      {path: "/staff/breaches/none/report", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/breaches/{id}/notify":      {path: "/staff/breaches/none/notify", want: staffOnly("404", toLogin, "403", dpo)},

	// The staff pages' home leads each role to its first page; the consent conflicts.
	"GET /staff":                   {want: staffHome()},
	"GET /staff/consent-conflicts": {want: staffOnly("200", toLogin, "403", dpo, support)},
	"GET /staff/processor-notices": {want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/processor-notices/{id}": {path: "/staff/processor-notices/none",
		want: staffOnly("404", toLogin, "403", dpo)},
	"GET /staff/processor-notices/{id}/done": {path: "/staff/processor-notices/none/done",
		want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/processor-notices/{id}/done": {path: "/staff/processor-notices/none/done",
		want: staffOnly("404", toLogin, "403", dpo)},

	// The privacy policy: its public pages, the member's notice, the DPO's console.
	"GET /privacy/policy":                         {want: everyone("200")},
	"GET /privacy/policy/versions":                {want: everyone("200")},
	"GET /privacy/policy/diff":                    {path: "/privacy/policy/diff?from=none&to=none", want: everyone("404")},
	"GET /privacy/policy/{version}":               {path: "/privacy/policy/none", want: everyone("404")},
	"GET /account/policy":                         {want: own("200", toLogin)},
	"POST /account/policy":                        {want: own("400", toLogin)},
	"GET /staff/policy":                           {want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/policy/new":                       {want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/policy/new":                      {want: staffOnly("400", toLogin, "403", dpo)},
	"GET /staff/policy/{version}":                 {path: "/staff/policy/none", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/policy/{version}":                {path: "/staff/policy/none", want: staffOnly("400", toLogin, "403", dpo)},
	"POST /staff/policy/{version}/publish":        {path: "/staff/policy/none/publish", want: staffOnly("404", toLogin, "403", dpo)},
	"GET /api/v1/policy":                          {want: everyone("200")},
	"GET /api/v1/policy/versions":                 {want: everyone("200")},
	"GET /api/v1/policy/versions/{version}":       {path: "/api/v1/policy/versions/none", want: everyone("404")},
	"GET /api/v1/policy/diff":                     {path: "/api/v1/policy/diff?from=none&to=none", want: everyone("400")},
	"GET /api/v1/me/policy":                       {want: own("200", "401")},
	"POST /api/v1/me/policy":                      {body: `{}`, want: own("400", "401")},
	"GET /api/v1/staff/policy":                    {want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/policy":                   {body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/policy/{version}":          {path: "/api/v1/staff/policy/none", want: staffOnly("404", "401", "403", dpo)},
	"PUT /api/v1/staff/policy/{version}":          {path: "/api/v1/staff/policy/none", body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"POST /api/v1/staff/policy/{version}/publish": {path: "/api/v1/staff/policy/none/publish", want: staffOnly("404", "401", "403", dpo)},
	// The register of processors, the transfers and the records of processing: public
	// lists, and the admin's and DPO's console.
	"GET /api/v1/processors": {want: everyone("200")},
	// Statistics: public (404 while no site is published, as here) and the staff's.
	"GET /api/v1/stats":                           {want: everyone("404")},
	"GET /api/v1/staff/stats":                     {want: staffOnly("404", "401", "403", marketing, dpo)},
	"GET /statistics":                             {want: everyone("200")},
	"GET /staff/analytics":                        {want: staffOnly("200", toLogin, "403", marketing, dpo)},
	"GET /api/v1/staff/processors":                {want: staffOnly("200", "401", "403", dpo)},
	"POST /api/v1/staff/processors":               {body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"GET /api/v1/staff/processors/{key}":          {path: "/api/v1/staff/processors/email_provider", want: staffOnly("200", "401", "403", dpo)},
	"PUT /api/v1/staff/processors/{key}":          {path: "/api/v1/staff/processors/email_provider", body: `{}`, want: staffOnly("400", "401", "403", dpo)},
	"POST /api/v1/staff/processors/{key}/retire":  {path: "/api/v1/staff/processors/none/retire", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/processors/{key}/approve": {path: "/api/v1/staff/processors/none/approve", want: staffOnly("404", "401", "403", dpo)},
	"POST /api/v1/staff/processors/{key}/reject":  {path: "/api/v1/staff/processors/none/reject", want: staffOnly("404", "401", "403", dpo)},
	"GET /api/v1/staff/ropa":                      {want: staffOnly("200", "401", "403", dpo)},
	"GET /privacy/processors":                     {want: everyone("200")},
	"GET /privacy/cookies":                        {want: everyone("200")},
	"POST /privacy/cookies":                       {want: everyone("400")}, // no choice
	"GET /staff/processors":                       {want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/processors":                      {want: staffOnly("400", toLogin, "403", dpo)},
	"GET /staff/processors/{key}":                 {path: "/staff/processors/email_provider", want: staffOnly("200", toLogin, "403", dpo)},
	"POST /staff/processors/{key}":                {path: "/staff/processors/none", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/processors/{key}/retire":         {path: "/staff/processors/none/retire", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/processors/{key}/approve":        {path: "/staff/processors/none/approve", want: staffOnly("404", toLogin, "403", dpo)},
	"POST /staff/processors/{key}/reject":         {path: "/staff/processors/none/reject", want: staffOnly("404", toLogin, "403", dpo)},
	"GET /staff/ropa":                             {want: staffOnly("200", toLogin, "403", dpo)},
	"GET /staff/ropa/{format}":                    {path: "/staff/ropa/json", want: staffOnly("200", toLogin, "403", dpo)},
	// The second factor's pages, staff management and the audit log.
	"GET /login/second-factor":                    {want: own("303 /account", toLogin)},
	"POST /login/second-factor":                   {want: own("400", toLogin)},
	"GET /account/second-factor":                  {want: own("200", toLogin)},
	"POST /account/second-factor":                 {want: own("400", toLogin)},
	"POST /account/second-factor/recovery-codes":  {want: staffAs(own("409", toLogin), "200")},
	"GET /staff/people":                           {want: staffOnly("200", toLogin, "403")},
	"POST /staff/people/grant":                    {want: staffOnly("400", toLogin, "403")},
	"POST /staff/people/{id}/revoke":              {path: "/staff/people/none/revoke", want: staffOnly("404", toLogin, "403")},
	"POST /staff/people/{id}/reset-second-factor": {path: "/staff/people/none/reset-second-factor", want: staffOnly("404", toLogin, "403")},
	"GET /staff/audit":                            {want: staffOnly("200", toLogin, "403", auditor)},
	"POST /staff/audit/verify":                    {want: staffOnly("303 /staff/audit?verify=queued", toLogin, "403", auditor)},
}

// staffAs gives every staff actor the answer s in a.
func staffAs(a answers, s string) answers {
	for _, r := range staff {
		a[r] = s
	}
	return a
}

// staffHome is GET /staff: marketing (and admin) to the campaigns, the DPO to the
// privacy requests, support to the consent conflicts.
func staffHome() answers {
	a := staffOnly("303 /staff/consent-conflicts", toLogin, "403", dpo, support, auditor)
	a[admin], a[marketing] = "303 /staff/campaigns", "303 /staff/campaigns"
	a[dpo] = "303 /staff/requests"
	a[auditor] = "303 /staff/audit"
	return a
}

// matrix is what the test sets up: a token maker for each member, and A's resources.
type matrix struct {
	t     *testing.T
	h     *apptest.Harness
	email map[actor]string
	ids   map[actor]string
	fixed map[string]string // A's resources that GETs try
	last  map[string]string // those the last request tried
}

// TestAuthorizationMatrix tries every route the site registers as every kind of caller
// and compares each answer with the one kept in authz.
func TestAuthorizationMatrix(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		routes := h.App.Routes()
		for _, p := range routes {
			if _, ok := authz[p]; !ok {
				t.Errorf("route %q has no authorization entry in authz", p)
			}
		}
		for p := range authz {
			if !slices.Contains(routes, p) {
				t.Errorf("authz has an entry for %q, which is not a route", p)
			}
		}
		m := setUpMatrix(t, h)
		tried := 0
		for _, p := range routes {
			pr, ok := authz[p]
			if !ok {
				continue
			}
			for _, a := range actors {
				want, ok := pr.want[a]
				if !ok {
					t.Errorf("%s: no answer given for %s", p, a)
					continue
				}
				path, got := m.try(p, pr, a)
				tried++
				if want = m.filled(want); got != want {
					t.Errorf("%s as %s: %s answered %q, want %q", p, a, path, got, want)
				}
			}
		}
		t.Logf("%d routes, %d requests", len(routes), tried)
	})
}

func setUpMatrix(t *testing.T, h *apptest.Harness) *matrix {
	t.Helper()
	m := &matrix{t: t, h: h, email: map[actor]string{}, fixed: map[string]string{}, ids: map[actor]string{}}
	ids := m.ids
	for _, a := range members {
		if a == child {
			continue
		}
		m.email[a] = strings.ReplaceAll(string(a), " ", "-") + "@example.org"
		ids[a], _ = h.Member(m.email[a], pw, nil)
	}
	for _, a := range staff {
		if err := h.GrantStaff(t.Context(), ids[a], string(a)); err != nil {
			t.Fatal(err)
		}
	}
	// The child, whose guardian is the guardian member, agreed.
	m.email[child] = "child@example.org"
	r := h.Register(map[string]any{"email": m.email[child], "password": pw, "name": "Child", "country": "FR",
		"birthdate": time.Now().AddDate(-12, 0, -1).Format("2006-01-02"), "guardian_email": m.email[guardian]})
	if r.Status != 201 {
		t.Fatalf("register child = %d %s", r.Status, r.Body)
	}
	m.fixed["{child}"] = r.JSON()["id"].(string)
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink(m.email[child], "/verify?token=")}, ""); v.Status != 200 {
		t.Fatalf("verify child = %d %s", v.Status, v.Body)
	}
	if g := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": h.WaitLink(m.email[guardian], "/guardian?token="), "agree": true}, ""); g.Status != 204 {
		t.Fatalf("guardian = %d %s", g.Status, g.Body)
	}

	tok := m.login(owner)
	m.fixed["{owner}"] = ids[owner]
	if r := h.Do("PATCH", "/api/v1/me", map[string]any{"public": map[string]bool{"name": true}}, tok); r.Status != 200 {
		t.Fatalf("A shows the name = %d %s", r.Status, r.Body)
	}
	if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, tok); r.Status != 200 {
		t.Fatalf("A's consent = %d %s", r.Status, r.Body)
	}
	events, _ := h.Do("GET", "/api/v1/me/consents/history", nil, tok).JSON()["events"].([]any)
	if len(events) == 0 {
		t.Fatal("A has no consent event")
	}
	m.fixed["{receipt}"] = strconv.FormatInt(int64(events[0].(map[string]any)["id"].(float64)), 10)
	// An erasure request, of a member who left.
	_, gone := h.Member("gone@example.org", pw, nil)
	e := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, gone)
	if e.Status != 202 {
		t.Fatalf("erasure = %d %s", e.Status, e.Body)
	}
	m.fixed["{erasure}"] = e.JSON()["request_id"].(string)
	return m
}

// login starts a session of the actor and returns its token.
func (m *matrix) login(a actor) string {
	m.t.Helper()
	l := m.h.Do("POST", "/api/v1/sessions", map[string]string{"email": m.email[a], "password": pw}, "")
	if l.Status != 201 {
		m.t.Fatalf("login %s = %d %s", a, l.Status, l.Body)
	}
	if slices.Contains(staff, a) {
		m.h.KeepStaff(m.t.Context(), m.ids[a]) // as if a code was given
	}
	return l.JSON()["token"].(string)
}

// fill puts A's resources into s. With fresh, those a request may use up (a file, a
// session, a campaign) are made anew for it, so that each caller tries a live one;
// the values used are kept in m.last, to read the expected answer with.
func (m *matrix) fill(s string, fresh bool) string {
	m.t.Helper()
	m.last = maps.Clone(m.fixed)
	for _, r := range []string{"{file}", "{session}", "{campaign}", "{request}", "{hold}"} {
		if !strings.Contains(s, r) {
			continue
		}
		if _, ok := m.fixed[r]; !ok {
			m.fixed[r] = m.make(r)
		}
		m.last[r] = m.fixed[r]
		if fresh {
			m.last[r] = m.make(r)
		}
	}
	return m.filled(s)
}

// filled puts into s the resources the last request used.
func (m *matrix) filled(s string) string {
	for k, v := range m.last {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// make makes one of A's resources and returns its id.
func (m *matrix) make(kind string) string {
	m.t.Helper()
	var r apptest.Response
	var field string
	switch kind {
	case "{file}":
		req, _ := http.NewRequest("POST", m.h.URL+"/api/v1/me/files?name=a.txt", strings.NewReader("A's file"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+m.login(owner)) // a request may have ended earlier sessions
		r, field = m.send(req), "id"
	case "{session}":
		tok := m.login(owner)
		for _, s := range m.h.Do("GET", "/api/v1/sessions", nil, tok).JSON()["sessions"].([]any) {
			if s := s.(map[string]any); s["current"] == true {
				return s["id"].(string)
			}
		}
		m.t.Fatal("no current session in A's list")
	case "{campaign}":
		r = m.h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Hello", "body": "Hi."}, m.login(marketing))
		field = "id"
	case "{request}":
		// A question of A's, a new one each time (the same one twice is one request).
		r = m.h.Do("POST", "/api/v1/me/requests", map[string]string{"right": "inquiry",
			"details": "What do you hold? " + strconv.FormatInt(time.Now().UnixNano(), 10)}, m.login(owner))
		field = "id"
	case "{hold}":
		// A hold on A, a new one each time (a release ends it).
		r = m.h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": m.fixed["{owner}"], "holders": []string{"requests"},
			"reason": "Pending litigation"}, m.login(dpo))
		field = "id"
	}
	id, _ := r.JSON()[field].(string)
	if r.Status != 201 || id == "" {
		m.t.Fatalf("making %s = %d %s", kind, r.Status, r.Body)
	}
	return id
}

// try sends the route's request as the actor: with a bearer token to the API, with
// the session cookie (as a browser on the site) to the pages; each member request on
// a session of its own, as a request may end it. It returns the path tried and the
// answer.
func (m *matrix) try(pattern string, pr probe, a actor) (string, string) {
	m.t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	if pr.path != "" {
		path = pr.path
	}
	path = m.fill(path, method != "GET")
	api := strings.HasPrefix(path, "/api/") || strings.HasPrefix(pattern, "POST /unsubscribe/one-click") || strings.HasPrefix(path, "/.well-known/")
	var body io.Reader
	if method != "GET" {
		body = strings.NewReader(pr.body)
	}
	req, err := http.NewRequest(method, m.h.URL+path, body)
	if err != nil {
		m.t.Fatal(err)
	}
	switch {
	case method == "GET":
	case api && strings.HasPrefix(pr.body, "{"):
		req.Header.Set("Content-Type", "application/json")
	case api:
		req.Header.Set("Content-Type", "text/plain")
	default:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", m.h.URL)
	}
	if a != anon {
		tok := m.login(a)
		if api {
			req.Header.Set("Authorization", "Bearer "+tok)
		} else {
			req.AddCookie(&http.Cookie{Name: server.CookieName, Value: tok})
		}
	}
	r := m.send(req)
	got := strconv.Itoa(r.Status)
	if loc := r.Header.Get("Location"); r.Status >= 300 && r.Status < 400 {
		u, _ := url.Parse(loc)
		if u.Path == "/login" {
			// The page to return to after the login is the web tests' concern.
			q := u.Query()
			q.Del("next")
			u.RawQuery = q.Encode()
		}
		got += " " + u.RequestURI()
	}
	return path, got
}

func (m *matrix) send(req *http.Request) apptest.Response {
	m.t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: bytes.TrimSpace(b)}
}
