package batch

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// HardMaxDecompressedBytes bounds the decompressed size of any batch, whatever the
// limits: a batch whose records decompress to more is refused by Normalize and by Records.
const HardMaxDecompressedBytes = 256 << 20

// Codec pools. Writers and readers are reset per use; none of them starts goroutines
// (gzip and lz4 are synchronous, zstd decoders run with concurrency 1 and the zstd encoder
// is only used through EncodeAll).
var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return w
	}}
	gzipReaders sync.Pool // *gzip.Reader; gzip.NewReader needs a valid header, so created lazily
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1))
		return w
	}}
	lz4Readers = sync.Pool{New: func() any {
		r := lz4.NewReader(nil)
		_ = r.Apply(lz4.ConcurrencyOption(1))
		return r
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecodeBuffersBelow(0),
			zstd.WithDecoderMaxMemory(HardMaxDecompressedBytes+1))
		if err != nil {
			panic(err) // options are constant
		}
		return d
	}}
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic(err)
		}
		return e
	})
	// scratch buffers for decompressing records that are only validated, not kept
	scratch = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
)

const maxPooledScratch = 4 << 20

func getScratch() *[]byte { return scratch.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) > maxPooledScratch {
		return
	}
	*b = (*b)[:0]
	scratch.Put(b)
}

// validCompression reports whether c is a codec this package knows.
func validCompression(c sluicev1.Compression) bool {
	return c >= sluicev1.Compression_COMPRESSION_UNSPECIFIED && c <= sluicev1.Compression_COMPRESSION_ZSTD
}

func isCompressed(c sluicev1.Compression) bool {
	return c != sluicev1.Compression_COMPRESSION_UNSPECIFIED && c != sluicev1.Compression_COMPRESSION_NONE
}

// compress appends src compressed with c to dst.
func compress(dst []byte, c sluicev1.Compression, src []byte) ([]byte, error) {
	switch c {
	case sluicev1.Compression_COMPRESSION_UNSPECIFIED, sluicev1.Compression_COMPRESSION_NONE:
		return append(dst, src...), nil
	case sluicev1.Compression_COMPRESSION_GZIP:
		buf := bytes.NewBuffer(dst)
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		w.Reset(buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case sluicev1.Compression_COMPRESSION_SNAPPY:
		n := snappy.MaxEncodedLen(len(src))
		if n < 0 {
			return nil, errors.New("batch: records too large for snappy")
		}
		dst = grow(dst, n)
		out := snappy.Encode(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)], nil
	case sluicev1.Compression_COMPRESSION_LZ4:
		buf := bytes.NewBuffer(dst)
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		w.Reset(buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case sluicev1.Compression_COMPRESSION_ZSTD:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return nil, invalid("compression", "unknown codec %d", c)
}

// decompress appends the decompression of src with c to dst. It fails with a
// *TooLargeError once more than limit bytes come out, and with ErrCorrupt for data the
// codec rejects. strict selects the reference Snappy decoder (no S2 extensions), so that
// what the server accepts every Snappy implementation can read.
func decompress(dst []byte, c sluicev1.Compression, src []byte, limit int, strict bool) ([]byte, error) {
	switch c {
	case sluicev1.Compression_COMPRESSION_UNSPECIFIED, sluicev1.Compression_COMPRESSION_NONE:
		if len(src) > limit {
			return nil, &TooLargeError{Size: len(src), Max: limit, Decompressed: true}
		}
		return append(dst, src...), nil
	case sluicev1.Compression_COMPRESSION_SNAPPY:
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return nil, corrupt("snappy: %v", err)
		}
		if n > limit {
			return nil, &TooLargeError{Size: n, Max: limit, Decompressed: true}
		}
		dst = grow(dst, n)
		var out []byte
		if strict {
			out, err = snappy.DecodeStrict(dst[len(dst):len(dst)+n], src)
		} else {
			out, err = snappy.Decode(dst[len(dst):len(dst)+n], src)
		}
		if err != nil {
			return nil, corrupt("snappy: %v", err)
		}
		if len(out) != n {
			return nil, corrupt("snappy: decoded %d bytes, header said %d", len(out), n)
		}
		return dst[:len(dst)+n], nil
	case sluicev1.Compression_COMPRESSION_GZIP:
		r, _ := gzipReaders.Get().(*gzip.Reader)
		if r == nil {
			r = new(gzip.Reader)
		}
		defer gzipReaders.Put(r)
		if err := r.Reset(bytes.NewReader(src)); err != nil {
			return nil, corrupt("gzip: %v", err)
		}
		return readLimited(dst, r, limit, "gzip")
	case sluicev1.Compression_COMPRESSION_LZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(r)
		r.Reset(bytes.NewReader(src))
		return readLimited(dst, r, limit, "lz4")
	case sluicev1.Compression_COMPRESSION_ZSTD:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		if err := d.Reset(bytes.NewReader(src)); err != nil {
			return nil, corrupt("zstd: %v", err)
		}
		out, err := readLimited(dst, d, limit, "zstd")
		_ = d.Reset(nil) // drop the reference to src
		return out, err
	}
	return nil, invalid("compression", "unknown codec %d", c)
}

// readLimited appends everything r yields to dst, failing once more than limit bytes
// arrive.
func readLimited(dst []byte, r io.Reader, limit int, codec string) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = grow(dst, min(max(cap(dst), 4<<10), limit+1-(len(dst)-start)+1))
		}
		room := min(cap(dst), start+limit+1)
		n, err := r.Read(dst[len(dst):room])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return nil, &TooLargeError{Size: len(dst) - start, Max: limit, Decompressed: true}
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, corrupt("%s: %v", codec, err)
		}
		if n == 0 && len(dst) < room {
			continue
		}
	}
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if n <= cap(b)-len(b) {
		return b
	}
	nb := make([]byte, len(b), len(b)+max(n, cap(b)))
	copy(nb, b)
	return nb
}
