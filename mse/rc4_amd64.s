#include "textflag.h"

// RC4 on amd64. State: SI = &st.s (256 uint32), AX = i, BX = j, both kept
// below 256 with byte arithmetic (the upper bits stay zero, so they index
// the table directly). One round: i++, x = S[i], j += x, y = S[j], swap,
// output S[(x+y) & 255].
//
// The bulk runs in blocks of eight rounds that start where i+1 is a
// multiple of 8, so S[i] of each round is a fixed displacement from the
// block's base (R12) and i needs no increment per round; the eight
// keystream bytes gather in R8 (a byte load into its low byte, then a
// rotate) and are xored with src as one word.

// ONE is a single round that xors one byte of src into dst.
#define ONE \
	INCB    AX \
	MOVL    (SI)(AX*4), CX \
	ADDB    CX, BX \
	MOVL    (SI)(BX*4), DX \
	MOVL    CX, (SI)(BX*4) \
	MOVL    DX, (SI)(AX*4) \
	ADDB    CX, DX \
	MOVBLZX (SI)(DX*4), R11 \
	XORB    (R9), R11 \
	MOVB    R11, (DI) \
	INCQ    R9 \
	INCQ    DI \
	DECQ    R10

// BLOCKROUND is round k of a block, off = 4*k.
#define BLOCKROUND(off) \
	MOVL off(SI)(R12*4), CX \
	ADDB CX, BX \
	MOVL (SI)(BX*4), DX \
	MOVL CX, (SI)(BX*4) \
	MOVL DX, off(SI)(R12*4) \
	ADDB CX, DX \
	MOVB (SI)(DX*4), R8 \
	RORQ $8, R8

// func xorKeyStream(st *stream, dst, src *byte, n int)
TEXT ·xorKeyStream(SB), NOSPLIT, $0-32
	MOVQ st+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), R9
	MOVQ n+24(FP), R10
	MOVL 1024(SI), AX
	MOVL 1028(SI), BX
	XORL R8, R8

align:
	CMPQ  R10, $8
	JB    tail
	MOVL  AX, R12
	INCB  R12
	TESTL $7, R12
	JZ    loop8
	ONE
	JMP   align

loop8:
	BLOCKROUND(0)
	BLOCKROUND(4)
	BLOCKROUND(8)
	BLOCKROUND(12)
	BLOCKROUND(16)
	BLOCKROUND(20)
	BLOCKROUND(24)
	BLOCKROUND(28)
	MOVQ (R9), R11
	XORQ R8, R11
	MOVQ R11, (DI)
	ADDB $8, R12
	ADDQ $8, R9
	ADDQ $8, DI
	SUBQ $8, R10
	CMPQ R10, $8
	JAE  loop8
	MOVL R12, AX
	DECB AX

tail:
	TESTQ R10, R10
	JZ    done
	ONE
	JMP   tail

done:
	MOVL AX, 1024(SI)
	MOVL BX, 1028(SI)
	RET
