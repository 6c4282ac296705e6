package lake_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
)

// What the S3 server of the local stack (LocalStack 4.14.0) answers to
// conditional PutObjects, as S3 documents them: 412 PreconditionFailed when
// the condition fails, 404 NoSuchKey for If-Match on a missing object. The
// store's error mapping rests on these answers.
func TestS3ConditionalAnswers(t *testing.T) {
	s, url := testenv.S3Lake(t)
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	prefix += "/"
	ctx := context.Background()
	client := lake.S3Client(s)
	etag, err := s.PutIfAbsent(ctx, "answers/obj", []byte("v0"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		key         string
		ifMatch     string
		ifNoneMatch string
		wantStatus  int
		wantCode    string
	}{
		{"if-none-match on an existing object", "answers/obj", "", "*", 412, "PreconditionFailed"},
		{"if-match with a stale etag", "answers/obj", `"0123456789abcdef0123456789abcdef"`, "", 412, "PreconditionFailed"},
		{"if-match on a missing object", "answers/missing", etag, "", 404, "NoSuchKey"},
		{"if-none-match on a missing object", "answers/new", "", "*", 200, ""},
		{"if-match with the current etag", "answers/obj", etag, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + tt.key),
				Body: bytes.NewReader([]byte("v1"))}
			if tt.ifMatch != "" {
				in.IfMatch = aws.String(tt.ifMatch)
			}
			if tt.ifNoneMatch != "" {
				in.IfNoneMatch = aws.String(tt.ifNoneMatch)
			}
			_, err := client.PutObject(ctx, in)
			status, code := 200, ""
			var re *awshttp.ResponseError
			if errors.As(err, &re) {
				status = re.HTTPStatusCode()
			} else if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			var ae smithy.APIError
			if errors.As(err, &ae) {
				code = ae.ErrorCode()
			}
			if status != tt.wantStatus || code != tt.wantCode {
				t.Fatalf("PutObject answered %d %q (%v), want %d %q", status, code, err, tt.wantStatus, tt.wantCode)
			}
		})
	}
}
