package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	// DefaultPartSize is the multipart part size when S3Config.PartSize is zero.
	DefaultPartSize = 8 << 20
	minPartSize     = 5 << 20 // S3's minimum for all parts but the last
	maxPartSize     = 5 << 30 // S3's maximum
	// abortTimeout bounds the cleanup after a failed Put, which runs even when the
	// caller's ctx has ended.
	abortTimeout = time.Minute
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is host[:port], without a scheme (UseTLS chooses https).
	Endpoint string
	// Region may stay empty for MinIO and most S3-compatible servers.
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	UseTLS    bool
	// Prefix is prepended to every object name, e.g. "steward/". It follows the rules
	// of names (lower case, no ".."); Info.Name and List see names without it.
	Prefix string
	// CreateBucket creates the bucket if it does not exist; otherwise NewS3 fails.
	CreateBucket bool
	// PartSize is the multipart part size, 5 MiB to 5 GiB, default 8 MiB. A Put of a
	// stream of unknown size, or of a known size above PartSize, holds one buffer of
	// PartSize for its duration. It also caps the object size: 10000 parts.
	PartSize uint64
}

// S3 stores objects in an S3-compatible bucket through minio-go. Objects carry no user
// metadata; their content type is application/octet-stream.
//
// Memory: a Put of at most PartSize bytes with a known size streams without a buffer;
// any other Put allocates one PartSize buffer (8 MiB by default) and uploads parts one
// at a time. So N concurrent Puts can hold N*PartSize: bound the number of concurrent
// uploads in the caller.
//
// A Put that fails aborts its multipart upload. A Put that crashes the process leaves
// one behind: MinIO expires those itself (after 24 h by default); on AWS S3, add a
// lifecycle rule AbortIncompleteMultipartUpload to the bucket.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	partSize uint64
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket and checks that it exists, creating it if
// c.CreateBucket is set.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	switch {
	case c.Endpoint == "":
		return nil, errors.New("blob: s3: no endpoint given")
	case strings.Contains(c.Endpoint, "://"):
		return nil, fmt.Errorf("blob: s3: endpoint %q: give host[:port] without a scheme, and UseTLS for https", c.Endpoint)
	case c.Bucket == "":
		return nil, errors.New("blob: s3: no bucket given")
	case c.Prefix != "" && !validPrefix(c.Prefix):
		return nil, fmt.Errorf("blob: s3: invalid prefix %q (lower-case letters, digits, \".\", \"_\", \"-\", \"/\")", c.Prefix)
	}
	partSize := c.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < minPartSize || partSize > maxPartSize {
		return nil, fmt.Errorf("blob: s3: part size %d outside 5 MiB to 5 GiB", partSize)
	}
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: c.UseTLS,
		Region: c.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3: %w", err)
	}
	s := &S3{client: client, core: minio.Core{Client: client}, bucket: c.Bucket, prefix: c.Prefix, partSize: partSize}

	ok, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("blob: s3: bucket %s: %w", c.Bucket, err)
	}
	if ok {
		return s, nil
	}
	if !c.CreateBucket {
		return nil, fmt.Errorf("blob: s3: bucket %s does not exist", c.Bucket)
	}
	err = client.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{Region: c.Region})
	if err != nil && errorCode(err) != minio.BucketAlreadyOwnedByYou {
		return nil, fmt.Errorf("blob: s3: create bucket %s: %w", c.Bucket, err)
	}
	return s, nil
}

// errorCode returns the S3 error code in err's chain, or "".
func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

func (s *S3) key(name string) string { return s.prefix + name }

// Put uploads with PutObject: one request when size is known and at most PartSize,
// otherwise a multipart upload of PartSize parts, one at a time. On error it makes sure
// no multipart upload of the object is left (minio-go aborts its own; this also removes
// any other unfinished upload of the same name).
func (s *S3) Put(ctx context.Context, name string, r io.Reader, size int64) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if err := checkSize(size); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: put %s: %w", name, err)
	}
	key := s.key(name)
	// putReader has no ReadAt or Seek: minio-go then neither uploads parts in parallel
	// from a ReaderAt nor retries a single PUT by seeking back.
	pr := newPutReader(ctx, r, size)
	var body io.Reader = pr
	if size == 0 {
		// minio-go sends an empty body without reading r: check r is empty first.
		if _, err := io.ReadAll(pr); err != nil {
			return 0, fmt.Errorf("blob: put %s: %w", name, err)
		}
		body = http.NoBody
	}
	_, err := s.client.PutObject(ctx, s.bucket, key, body, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.partSize,
		NumThreads:  1,
	})
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if aerr := s.client.RemoveIncompleteUpload(actx, s.bucket, key); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart upload: %w", aerr))
		}
		return 0, fmt.Errorf("blob: put %s: %w", name, err)
	}
	return pr.n, nil
}

// Open issues one ranged GET; its body is the reader.
func (s *S3) Open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkRange(offset, length); err != nil {
		return nil, err
	}
	if length == 0 {
		return s.openEmpty(ctx, name, offset)
	}
	var opts minio.GetObjectOptions
	switch {
	case offset == 0 && length < 0:
	case length < 0:
		err := opts.SetRange(offset, 0)
		if err != nil {
			return nil, fmt.Errorf("blob: open %s: %w", name, err)
		}
	default:
		err := opts.SetRange(offset, offset+length-1)
		if err != nil {
			return nil, fmt.Errorf("blob: open %s: %w", name, err)
		}
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.key(name), opts)
	if err != nil {
		switch errorCode(err) {
		case minio.NoSuchKey:
			return nil, fmt.Errorf("blob: open %s: %w", name, ErrNotFound)
		case minio.InvalidRange:
			// The offset is at or past the end; at the end is an empty read.
			return s.openEmpty(ctx, name, offset)
		}
		return nil, fmt.Errorf("blob: open %s: %w", name, err)
	}
	return body, nil
}

// openEmpty answers a read of no bytes at offset: empty if the object exists and offset
// is within or at its end.
func (s *S3) openEmpty(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, fmt.Errorf("blob: open %s: %w (offset %d, size %d)", name, ErrInvalidRange, offset, info.Size)
	}
	return http.NoBody, nil
}

// Delete removes the object; S3 reports no error for a missing one.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("blob: delete %s: %w", name, err)
	}
	return nil
}

// AbortUpload removes any unfinished multipart upload of name: what a process killed
// in the middle of a Put leaves behind (the object itself never appeared).
func (s *S3) AbortUpload(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, s.key(name)); err != nil {
		return fmt.Errorf("blob: abort upload %s: %w", name, err)
	}
	return nil
}

// Stat issues a HEAD request.
func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		if errorCode(err) == minio.NoSuchKey {
			return Info{}, fmt.Errorf("blob: stat %s: %w", name, ErrNotFound)
		}
		return Info{}, fmt.Errorf("blob: stat %s: %w", name, err)
	}
	return Info{Name: name, Size: oi.Size, Modified: oi.LastModified}, nil
}

// List pages through ListObjectsV2 under Prefix+prefix; keys that are not valid names
// (not written by this package) are skipped.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return s.ListAfter(ctx, prefix, "", fn)
}

// ListAfter is List starting after after (ListObjectsV2's StartAfter): the server
// skips what sorts before it, so the listing costs only what follows.
func (s *S3) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	opts := minio.ListObjectsOptions{Prefix: s.key(prefix), Recursive: true}
	if after != "" {
		opts.StartAfter = s.key(after)
	}
	objects := s.client.ListObjectsIter(ctx, s.bucket, opts)
	for oi := range objects {
		if oi.Err != nil {
			return fmt.Errorf("blob: list %q: %w", prefix, oi.Err)
		}
		name, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || !ValidName(name) || name <= after {
			continue
		}
		if err := fn(Info{Name: name, Size: oi.Size, Modified: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}
