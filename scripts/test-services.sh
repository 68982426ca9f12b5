#!/usr/bin/env bash
# shellcheck shell=bash
# Throwaway test services for steward: PostgreSQL, the mailpit SMTP catcher and MinIO (S3).
#
# Usage (from the repo root):
#
#   source scripts/test-services.sh     # start the services, export STEWARD_TEST_* variables
#   go test -count=1 ./...
#   steward_services_stop               # stop them and delete their temporary directory
#
# Or without sourcing (services keep running after the command returns):
#
#   scripts/test-services.sh start > services.env   # prints `export VAR=value` lines
#   source services.env
#   scripts/test-services.sh stop                   # needs STEWARD_TEST_SERVICES_DIR from services.env
#
# Requirements: PostgreSQL server binaries (Debian: `apt-get install postgresql`), mailpit and
# minio in .tools/ (see .ci/run for the pinned `GOBIN=$PWD/.tools go install` lines), curl.
#
# Settings (environment, all optional):
#   STEWARD_PG_BIN           PostgreSQL bin directory (default: newest /usr/lib/postgresql/*/bin)
#   STEWARD_PG_PORT          PostgreSQL port on 127.0.0.1 (default 55432)
#   STEWARD_SMTP_PORT        mailpit SMTP port on 127.0.0.1 (default 1025)
#   STEWARD_MAILPIT_PORT     mailpit HTTP API port on 127.0.0.1 (default 8025)
#   STEWARD_MAILPIT          mailpit binary (default: .tools/mailpit in the repo)
#   STEWARD_MINIO_PORT       MinIO S3 API port on 127.0.0.1 (default 9000)
#   STEWARD_MINIO_CONSOLE_PORT  MinIO console port on 127.0.0.1 (default 9001; the console is off,
#                            but MinIO still binds it)
#   STEWARD_MINIO            minio binary (default: .tools/minio in the repo)
#   STEWARD_CHROMIUM         browser for STEWARD_TEST_CHROMIUM (default /usr/bin/chromium)
#
# Everything lives in one temporary directory (STEWARD_TEST_SERVICES_DIR): the database
# cluster, logs, mailpit's database, MinIO's data (bucket steward-test, user testkey) and the
# PID files. The services are stopped by PID only.
#
# This file does not change the caller's shell options; functions return non-zero on failure.

_steward_repo_root() {
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

_steward_log() {
	echo "test-services: $*" >&2
}

# Succeeds if something accepts TCP connections on 127.0.0.1:$1.
_steward_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_steward_pg_bin() {
	if [[ -n "${STEWARD_PG_BIN:-}" ]]; then
		echo "$STEWARD_PG_BIN"
		return 0
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -z "$d" ]]; then
		if command -v pg_ctl >/dev/null 2>&1; then
			d=$(dirname "$(command -v pg_ctl)")
		fi
	fi
	[[ -n "$d" && -x "$d/initdb" ]] || return 1
	echo "$d"
}

# Runs a command as the postgres user when we are root (initdb refuses root). It runs from /
# because the postgres user may not be able to enter the current directory.
_steward_as_pg() {
	if [[ "$(id -u)" == 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Stops the process whose PID is in file $1 (TERM, then KILL after 10 s).
_steward_stop_pidfile() {
	local pid i
	[[ -f "$1" ]] || return 0
	pid=$(cat "$1")
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

# Prints the variables for the running services as `export VAR=value` lines.
steward_services_env() {
	local dir="${STEWARD_TEST_SERVICES_DIR:-}"
	[[ -n "$dir" && -f "$dir/env" ]] || { _steward_log "no running services (STEWARD_TEST_SERVICES_DIR unset)"; return 1; }
	cat "$dir/env"
}

steward_services_start() {
	local pg_port="${STEWARD_PG_PORT:-55432}"
	local smtp_port="${STEWARD_SMTP_PORT:-1025}"
	local http_port="${STEWARD_MAILPIT_PORT:-8025}"
	local minio_port="${STEWARD_MINIO_PORT:-9000}"
	local minio_console_port="${STEWARD_MINIO_CONSOLE_PORT:-9001}"
	local s3_user=testkey s3_secret=testsecret123 s3_bucket=steward-test
	local root mailpit minio pgbin dir port i

	root=$(_steward_repo_root) || return 1
	mailpit="${STEWARD_MAILPIT:-$root/.tools/mailpit}"
	minio="${STEWARD_MINIO:-$root/.tools/minio}"

	if [[ -n "${STEWARD_TEST_SERVICES_DIR:-}" && -d "$STEWARD_TEST_SERVICES_DIR" ]]; then
		_steward_log "services already started in $STEWARD_TEST_SERVICES_DIR (run steward_services_stop first)"
		return 1
	fi
	pgbin=$(_steward_pg_bin) || { _steward_log "PostgreSQL server binaries not found (apt-get install postgresql, or set STEWARD_PG_BIN)"; return 1; }
	[[ -x "$mailpit" ]] || { _steward_log "mailpit not found at $mailpit (GOBIN=\$PWD/.tools go install github.com/axllent/mailpit@v1.33.1)"; return 1; }
	[[ -x "$minio" ]] || { _steward_log "minio not found at $minio (install it as .ci/run does, or set STEWARD_MINIO)"; return 1; }
	command -v curl >/dev/null 2>&1 || { _steward_log "curl is required"; return 1; }
	for port in "$pg_port" "$smtp_port" "$http_port" "$minio_port" "$minio_console_port"; do
		if _steward_port_busy "$port"; then
			_steward_log "port 127.0.0.1:$port is already in use (services already running? see STEWARD_*_PORT)"
			return 1
		fi
	done

	dir=$(mktemp -d "${TMPDIR:-/tmp}/steward-services.XXXXXX") || return 1
	chmod 755 "$dir"
	if [[ "$(id -u)" == 0 ]]; then
		chown postgres:postgres "$dir" || { rm -rf "$dir"; return 1; }
	fi
	export STEWARD_TEST_SERVICES_DIR="$dir"
	echo "$pgbin" >"$dir/pgbin"

	# PostgreSQL: durability off, for test speed only.
	_steward_log "starting PostgreSQL on 127.0.0.1:$pg_port (data in $dir/data)"
	if ! _steward_as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
		_steward_log "initdb failed:"; cat "$dir/initdb.log" >&2
		steward_services_stop; return 1
	fi
	if ! _steward_as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null; then
		_steward_log "PostgreSQL failed to start:"; cat "$dir/pg.log" >&2
		steward_services_stop; return 1
	fi
	if ! "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
		-c "CREATE DATABASE steward_test" >/dev/null; then
		_steward_log "could not create database steward_test"
		steward_services_stop; return 1
	fi

	# mailpit: started in the background; its PID goes in $dir/mailpit.pid.
	_steward_log "starting mailpit: SMTP 127.0.0.1:$smtp_port, API 127.0.0.1:$http_port"
	"$mailpit" --smtp "127.0.0.1:$smtp_port" --listen "127.0.0.1:$http_port" \
		--database "$dir/mail.db" --disable-version-check --smtp-disable-rdns \
		--smtp-auth-accept-any --smtp-auth-allow-insecure \
		</dev/null >"$dir/mailpit.log" 2>&1 &
	echo $! >"$dir/mailpit.pid"
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$(cat "$dir/mailpit.pid")" 2>/dev/null; then
			_steward_log "mailpit exited:"; cat "$dir/mailpit.log" >&2
			steward_services_stop; return 1
		fi
		if curl -fsS -o /dev/null "http://127.0.0.1:$http_port/api/v1/messages" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if ((i >= 300)); then
		_steward_log "mailpit API did not answer within 30 s:"; cat "$dir/mailpit.log" >&2
		steward_services_stop; return 1
	fi

	# MinIO: started in the background; its PID goes in $dir/minio.pid. The bucket is made with
	# a SigV4-signed request (curl --aws-sigv4), so no S3 client is needed here.
	_steward_log "starting MinIO: S3 API 127.0.0.1:$minio_port (data in $dir/minio)"
	MINIO_ROOT_USER="$s3_user" MINIO_ROOT_PASSWORD="$s3_secret" MINIO_BROWSER=off MINIO_UPDATE=off \
		"$minio" server "$dir/minio" --quiet --address "127.0.0.1:$minio_port" \
		--console-address "127.0.0.1:$minio_console_port" \
		</dev/null >"$dir/minio.log" 2>&1 &
	echo $! >"$dir/minio.pid"
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$(cat "$dir/minio.pid")" 2>/dev/null; then
			_steward_log "MinIO exited:"; cat "$dir/minio.log" >&2
			steward_services_stop; return 1
		fi
		if curl -fsS -o /dev/null "http://127.0.0.1:$minio_port/minio/health/ready" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if ((i >= 300)); then
		_steward_log "MinIO was not ready within 30 s:"; cat "$dir/minio.log" >&2
		steward_services_stop; return 1
	fi
	# Ready is not quite ready: MinIO may answer 503 for a moment longer.
	for ((i = 0; i < 100; i++)); do
		if curl -fsS -o /dev/null -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$s3_user:$s3_secret" \
			"http://127.0.0.1:$minio_port/$s3_bucket" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if ((i >= 100)); then
		_steward_log "could not create bucket $s3_bucket within 10 s:"; cat "$dir/minio.log" >&2
		steward_services_stop; return 1
	fi

	export STEWARD_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/steward_test?sslmode=disable"
	export STEWARD_TEST_SMTP_ADDR="127.0.0.1:$smtp_port"
	export STEWARD_TEST_MAILPIT_URL="http://127.0.0.1:$http_port"
	export STEWARD_TEST_CHROMIUM="${STEWARD_CHROMIUM:-/usr/bin/chromium}"
	export STEWARD_TEST_S3_ENDPOINT="127.0.0.1:$minio_port"
	export STEWARD_TEST_S3_ACCESS_KEY="$s3_user"
	export STEWARD_TEST_S3_SECRET_KEY="$s3_secret"
	export STEWARD_TEST_S3_BUCKET="$s3_bucket"
	export STEWARD_TEST_REQUIRE_SERVICES=1
	{
		echo "export STEWARD_TEST_POSTGRES_URL='$STEWARD_TEST_POSTGRES_URL'"
		echo "export STEWARD_TEST_SMTP_ADDR=$STEWARD_TEST_SMTP_ADDR"
		echo "export STEWARD_TEST_MAILPIT_URL=$STEWARD_TEST_MAILPIT_URL"
		echo "export STEWARD_TEST_CHROMIUM=$STEWARD_TEST_CHROMIUM"
		echo "export STEWARD_TEST_S3_ENDPOINT=$STEWARD_TEST_S3_ENDPOINT"
		echo "export STEWARD_TEST_S3_ACCESS_KEY=$STEWARD_TEST_S3_ACCESS_KEY"
		echo "export STEWARD_TEST_S3_SECRET_KEY=$STEWARD_TEST_S3_SECRET_KEY"
		echo "export STEWARD_TEST_S3_BUCKET=$STEWARD_TEST_S3_BUCKET"
		echo "export STEWARD_TEST_REQUIRE_SERVICES=1"
		echo "export STEWARD_TEST_SERVICES_DIR=$dir"
	} >"$dir/env"
	_steward_log "ready (PostgreSQL PID $(head -n 1 "$dir/data/postmaster.pid"), mailpit PID $(cat "$dir/mailpit.pid"), MinIO PID $(cat "$dir/minio.pid"); stop with steward_services_stop)"
}

# Stops the services started by steward_services_start (by PID) and removes their directory.
steward_services_stop() {
	local dir="${STEWARD_TEST_SERVICES_DIR:-}"
	local pgbin
	[[ -n "$dir" && -d "$dir" ]] || return 0

	_steward_stop_pidfile "$dir/minio.pid"
	_steward_stop_pidfile "$dir/mailpit.pid"

	if [[ -f "$dir/data/postmaster.pid" ]]; then
		pgbin=$(cat "$dir/pgbin" 2>/dev/null || _steward_pg_bin)
		_steward_as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			_steward_log "pg_ctl stop failed; see $dir/pg.log"
	fi

	if [[ -f "$dir/data/postmaster.pid" ]]; then
		_steward_log "PostgreSQL still running; keeping $dir"
	else
		rm -rf "$dir"
	fi
	unset STEWARD_TEST_SERVICES_DIR STEWARD_TEST_POSTGRES_URL STEWARD_TEST_SMTP_ADDR \
		STEWARD_TEST_MAILPIT_URL STEWARD_TEST_CHROMIUM STEWARD_TEST_REQUIRE_SERVICES \
		STEWARD_TEST_S3_ENDPOINT STEWARD_TEST_S3_ACCESS_KEY STEWARD_TEST_S3_SECRET_KEY STEWARD_TEST_S3_BUCKET
	return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	# Executed, not sourced.
	set -euo pipefail
	case "${1:-}" in
	start)
		steward_services_start
		steward_services_env
		;;
	stop) steward_services_stop ;;
	env) steward_services_env ;;
	*)
		echo "usage: $0 start|stop|env   (or: source $0)" >&2
		exit 2
		;;
	esac
else
	steward_services_start
fi
