package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// S3Config says how to reach S3 or an S3-compatible endpoint.
type S3Config struct {
	Endpoint        string // empty: AWS; LocalStack: http://127.0.0.1:4566
	Region          string
	PathStyle       bool   // LocalStack and most S3-compatibles want path-style
	AccessKeyID     string // empty: the AWS default credential chain
	SecretAccessKey string
	MaxAttempts     int   // per request, with exponential backoff
	PartSize        int64 // objects above this are uploaded in parts
}

var _ Store = (*S3Store)(nil)

// S3Store is a Store in an S3 bucket under a key prefix. A single PutObject
// or a completed multipart upload is atomic in S3, which gives Put its
// all-or-nothing visibility. Conditional writes (ConditionalStore) are
// S3's own: PutObject with If-Match or If-None-Match: *.
type S3Store struct {
	client   *s3.Client
	uploader *transfermanager.Client
	bucket   string
	prefix   string // "" or "a/b/"
}

// NewS3Store connects to a bucket. It does not create the bucket.
func NewS3Store(ctx context.Context, bucket, prefix string, cfg S3Config) (*S3Store, error) {
	if bucket == "" {
		return nil, errors.New("lake: s3: no bucket")
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = max(cfg.MaxAttempts, 1)
				o.MaxBackoff = 5 * time.Second
				// The default client-side retry quota gives up during a long
				// outage; callers here retry until S3 is back, so don't.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("lake: s3 config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums only where S3 demands them: S3-compatible stores vary
		// in their support of the newer default CRC trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	partSize := cfg.PartSize
	if partSize < 5<<20 {
		partSize = 16 << 20
	}
	uploader := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = partSize
		o.MultipartUploadThreshold = partSize
		o.Concurrency = 4
	})
	if prefix != "" {
		prefix = strings.Trim(prefix, "/") + "/"
	}
	return &S3Store{client: client, uploader: uploader, bucket: bucket, prefix: prefix}, nil
}

func (s *S3Store) key(k string) string { return s.prefix + k }

func (s *S3Store) Put(ctx context.Context, key string, body io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.uploader.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.key(key)),
		Body:   body,
	})
	if err != nil {
		return fmt.Errorf("lake: put s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	return nil
}

func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: s3://%s/%s", ErrNotExist, s.bucket, s.key(key))
		}
		return nil, fmt.Errorf("lake: get s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	return out.Body, nil
}

func (s *S3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.key(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lake: list s3://%s/%s: %w", s.bucket, s.key(prefix), err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if strings.HasPrefix(path.Base(k), tmpPrefix) {
				continue
			}
			out = append(out, Object{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil // S3 lists in key order
}

func (s *S3Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("lake: delete s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	return nil
}

// ReadWithETag reads a whole object and its ETag.
func (s *S3Store) ReadWithETag(ctx context.Context, key string) ([]byte, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	var etag string
	b, err := readWhole(ctx, func(ctx context.Context) ([]byte, bool, error) {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
		if err != nil {
			if isNotFound(err) {
				return nil, false, fmt.Errorf("lake: get s3://%s/%s: %w", s.bucket, s.key(key), ErrNotExist)
			}
			return nil, false, fmt.Errorf("lake: get s3://%s/%s: %w", s.bucket, s.key(key), err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			return nil, true, fmt.Errorf("lake: read s3://%s/%s: %w", s.bucket, s.key(key), err)
		}
		etag = aws.ToString(out.ETag)
		return b, false, nil
	})
	if err != nil {
		return nil, "", err
	}
	return b, etag, nil
}

// PutIfMatch is PutObject with If-Match: S3 compares the ETag and writes
// in one step.
func (s *S3Store) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if etag == "" {
		return "", fmt.Errorf("lake: put-if-match s3://%s/%s: empty etag", s.bucket, s.key(key))
	}
	return s.putConditional(ctx, key, body, &s3.PutObjectInput{IfMatch: aws.String(etag)})
}

// PutIfAbsent is PutObject with If-None-Match: *.
func (s *S3Store) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	return s.putConditional(ctx, key, body, &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
}

// putConditional sends one PutObject (conditional objects are small; the
// uploader's multipart path has no conditions) with the client's retries,
// plus one: a 409 ConditionalRequestConflict (another conditional write of
// the key was in flight) is retried, as S3 asks; the condition is checked
// again each time. A 412 is never retried: the SDK treats it as final.
//
// A retried request can fail its condition on its own earlier attempt,
// which S3 applied before the answer was lost. So a 412 after a retry is a
// success if the object now holds exactly body.
func (s *S3Store) putConditional(ctx context.Context, key string, body []byte, in *s3.PutObjectInput) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in.Bucket, in.Key = aws.String(s.bucket), aws.String(s.key(key))
	in.Body = bytes.NewReader(body)
	in.ContentLength = aws.Int64(int64(len(body)))
	attempts := 0
	out, err := s.client.PutObject(ctx, in, func(o *s3.Options) {
		o.Retryer = retry.AddWithErrorCodes(o.Retryer, "ConditionalRequestConflict")
		o.APIOptions = append(o.APIOptions, countAttempts(&attempts))
	})
	if err == nil {
		return aws.ToString(out.ETag), nil
	}
	failed, gone := isPreconditionFailed(err), in.IfMatch != nil && isNotFound(err)
	if !failed && !gone {
		return "", fmt.Errorf("lake: conditional put s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	if attempts > 1 {
		if cur, etag, rerr := s.ReadWithETag(ctx, key); rerr == nil && bytes.Equal(cur, body) {
			return etag, nil
		}
	}
	if gone {
		return "", fmt.Errorf("lake: conditional put s3://%s/%s: %w (%w)", s.bucket, s.key(key), ErrPreconditionFailed, ErrNotExist)
	}
	return "", fmt.Errorf("lake: conditional put s3://%s/%s: %w", s.bucket, s.key(key), ErrPreconditionFailed)
}

// countAttempts counts the HTTP attempts of one operation: it sits after
// the retry middleware, which calls it once per attempt.
func countAttempts(n *int) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("lakeCountAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				*n++
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	}
}

func isPreconditionFailed(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

// EnsureBucket creates the bucket if it does not exist (for tests and dev).
func (s *S3Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("lake: head bucket %s: %w", s.bucket, err)
	}
	_, err = s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("lake: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
