package lake

import "github.com/aws/aws-sdk-go-v2/service/s3"

// S3Client exposes the store's client to the external tests, which check
// what the S3 server itself answers.
func S3Client(s *S3Store) *s3.Client { return s.client }
