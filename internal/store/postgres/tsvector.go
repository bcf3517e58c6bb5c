package postgres

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// tsvector is a tsvector in PostgreSQL's binary format, as tsvectorsend
// writes it and tsvectorrecv reads it: the number of lexemes (int32),
// then each lexeme, NUL-terminated, with the number of its positions
// (uint16) and the positions (uint16 each, weight D: the position
// alone). The indexer sends bundle_text's words so (appendTSVector),
// which spares the server parsing and sorting them from text.
type tsvector []byte

// The OIDs of tsvector and tsvector[], which are fixed for built-in
// types.
const (
	tsvectorOID      = 3614
	tsvectorArrayOID = 3643
)

// registerTSVector makes the connection of m send a tsvector value in
// binary, as it is. Other values for a tsvector parameter (a string)
// are sent as text, as without it.
func registerTSVector(m *pgtype.Map) {
	t := &pgtype.Type{Name: "tsvector", OID: tsvectorOID, Codec: tsvectorCodec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_tsvector", OID: tsvectorArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
	// Without a prepared statement to say a parameter's type (the
	// connection's default_query_exec_mode exec, for PgBouncer), pgx
	// picks it by the value's Go type.
	m.RegisterDefaultPgType(tsvector(nil), "tsvector")
	m.RegisterDefaultPgType([]tsvector(nil), "_tsvector")
}

// afterConnect readies each new connection of the pool.
func afterConnect(_ context.Context, c *pgx.Conn) error {
	registerTSVector(c.TypeMap())
	return nil
}

// tsvectorCodec encodes a tsvector value in binary, and anything else,
// and every read, as pgtype.TextCodec does.
type tsvectorCodec struct{ pgtype.TextCodec }

func (tsvectorCodec) FormatSupported(format int16) bool {
	return format == pgtype.TextFormatCode || format == pgtype.BinaryFormatCode
}

// PreferredFormat is binary, which pgx sends a tsvector value in (a
// string goes as text whatever this says). A tsvector read would come in
// binary too, which PlanScan refuses: Trail reads only the lexemes and
// positions of its tsvectors (unnest).
func (tsvectorCodec) PreferredFormat() int16 { return pgtype.BinaryFormatCode }

func (c tsvectorCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(tsvector); ok {
		if format == pgtype.BinaryFormatCode {
			return encodeTSVector{}
		}
		return encodeTSVectorText{}
	}
	if format != pgtype.TextFormatCode {
		return nil
	}
	return c.TextCodec.PlanEncode(m, oid, format, value)
}

func (c tsvectorCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if format != pgtype.TextFormatCode {
		return nil
	}
	return c.TextCodec.PlanScan(m, oid, format, target)
}

func (c tsvectorCodec) DecodeDatabaseSQLValue(m *pgtype.Map, oid uint32, format int16, src []byte) (driver.Value, error) {
	if format != pgtype.TextFormatCode {
		return nil, errBinaryTSVector
	}
	return c.TextCodec.DecodeDatabaseSQLValue(m, oid, format, src)
}

func (c tsvectorCodec) DecodeValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if format != pgtype.TextFormatCode {
		return nil, errBinaryTSVector
	}
	return c.TextCodec.DecodeValue(m, oid, format, src)
}

var errBinaryTSVector = errors.New("a tsvector in binary is not read")

type encodeTSVector struct{}

func (encodeTSVector) Encode(value any, buf []byte) ([]byte, error) {
	return append(buf, value.(tsvector)...), nil
}

// encodeTSVectorText writes a tsvector value in its text form, for a
// connection that sends every parameter as text (default_query_exec_mode
// exec, as through PgBouncer, or simple_protocol).
type encodeTSVectorText struct{}

var errTSVectorLayout = errors.New("a tsvector value that is not in tsvectorsend's layout")

func (encodeTSVectorText) Encode(value any, buf []byte) ([]byte, error) {
	v := []byte(value.(tsvector))
	if len(v) < 4 {
		return nil, errTSVectorLayout
	}
	n := binary.BigEndian.Uint32(v)
	v = v[4:]
	for k := uint32(0); k < n; k++ {
		end := bytes.IndexByte(v, 0)
		if end < 0 || len(v) < end+3 {
			return nil, errTSVectorLayout
		}
		if k > 0 {
			buf = append(buf, ' ')
		}
		buf = appendLexeme(buf, string(v[:end]))
		np := int(binary.BigEndian.Uint16(v[end+1:]))
		if v = v[end+3:]; len(v) < 2*np {
			return nil, errTSVectorLayout
		}
		for j := range np {
			sep := byte(',')
			if j == 0 {
				sep = ':'
			}
			// The position is the low 14 bits; Trail's words carry
			// weight D, which is no letter in the text form.
			buf = strconv.AppendUint(append(buf, sep), uint64(binary.BigEndian.Uint16(v[2*j:])&0x3fff), 10)
		}
		v = v[2*np:]
	}
	if len(v) != 0 {
		return nil, errTSVectorLayout
	}
	return buf, nil
}

// appendTSVector appends to b, in binary, the tsvector of the words
// words[order[0]], words[order[1]], …, each with the positions of the
// bits set in its masks (bit k of masks[i][j]: position 64j+k+1). The
// words must be distinct, hold no NUL byte, and be in order as Go sorts
// strings, which is tsvector's (bytewise, a prefix first): the server
// then need not sort them. Trail's words never hold a NUL (derive).
func appendTSVector(b []byte, order []int, words []string, masks [][textBlock / 64]uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(order)))
	for _, i := range order {
		b = append(b, words[i]...)
		b = append(b, 0)
		n := 0
		for _, m := range masks[i] {
			n += bits.OnesCount64(m)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		for j, m := range masks[i] {
			for ; m != 0; m &= m - 1 {
				b = binary.BigEndian.AppendUint16(b, uint16(64*j+bits.TrailingZeros64(m)+1))
			}
		}
	}
	return b
}
