#include "textflag.h"

// RC4 on amd64. State: SI = &st.s (256 uint32), AX = i, BX = j, both kept
// below 256 with byte arithmetic (the upper bits stay zero, so they index
// the table directly). One round: i++, x = S[i], j += x, y = S[j], swap,
// output S[(x+y) & 255]. Eight rounds gather eight keystream bytes in R8
// (a byte load into its low byte, then a rotate), xored with src as one
// word.

#define ROUND \
	INCB AX \
	MOVL (SI)(AX*4), CX \
	ADDB CX, BX \
	MOVL (SI)(BX*4), DX \
	MOVL CX, (SI)(BX*4) \
	MOVL DX, (SI)(AX*4) \
	ADDB CX, DX

#define ROUND8 \
	ROUND \
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
	CMPQ R10, $8
	JB   tail

loop8:
	ROUND8
	ROUND8
	ROUND8
	ROUND8
	ROUND8
	ROUND8
	ROUND8
	ROUND8
	MOVQ (R9), R11
	XORQ R8, R11
	MOVQ R11, (DI)
	ADDQ $8, R9
	ADDQ $8, DI
	SUBQ $8, R10
	CMPQ R10, $8
	JAE  loop8

tail:
	TESTQ R10, R10
	JZ    done

loop1:
	ROUND
	MOVBLZX (SI)(DX*4), R11
	XORB    (R9), R11
	MOVB    R11, (DI)
	INCQ    R9
	INCQ    DI
	DECQ    R10
	JNZ     loop1

done:
	MOVL AX, 1024(SI)
	MOVL BX, 1028(SI)
	RET
