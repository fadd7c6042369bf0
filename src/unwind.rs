//! The static musl build with `panic = "abort"` never unwinds, yet std still
//! names libunwind's entry points (for a panic's optional backtrace, and in
//! landing pads that abort never reaches). Linking them pulls all of
//! libunwind, and through its diagnostics musl's stdio, into a binary whose
//! size is a promise. These definitions stand in for them: nothing unwinds,
//! and a panic's backtrace (RUST_BACKTRACE) shows no frames.

use std::ffi::c_void;

/// `_URC_END_OF_STACK`: a walk that finds no frame.
const END_OF_STACK: i32 = 5;

#[unsafe(no_mangle)]
extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> i32 {
    END_OF_STACK
}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_RaiseException(_exception: *mut c_void) -> i32 {
    END_OF_STACK
}

/// Reached only by unwinding, which `panic = "abort"` never starts.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
    std::process::abort()
}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_DeleteException(_exception: *mut c_void) {}

macro_rules! nothing_to_read {
    ($($name:ident),*) => {$(
        #[unsafe(no_mangle)]
        extern "C" fn $name(_context: *mut c_void) -> usize {
            0
        }
    )*};
}
nothing_to_read!(
    _Unwind_GetLanguageSpecificData,
    _Unwind_GetRegionStart,
    _Unwind_GetTextRelBase,
    _Unwind_GetDataRelBase,
    _Unwind_GetIP,
    _Unwind_GetCFA,
    _Unwind_FindEnclosingFunction
);

#[unsafe(no_mangle)]
extern "C" fn _Unwind_GetIPInfo(_context: *mut c_void, before: *mut i32) -> usize {
    if !before.is_null() {
        // SAFETY: the caller passes a valid out-pointer (checked non-null).
        unsafe { *before = 0 };
    }
    0
}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_GetGR(_context: *mut c_void, _index: i32) -> usize {
    0
}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_SetGR(_context: *mut c_void, _index: i32, _value: usize) {}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_SetIP(_context: *mut c_void, _value: usize) {}
