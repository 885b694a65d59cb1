//! `T = I`: the image itself is measured. With a pixel mask this is inpainting; it is the
//! simplest operator with closed-form posteriors, used by tests of the proximal step and samplers.

use super::Transform;
use tch::Tensor;

pub struct Identity {
    h: i64,
    w: i64,
}

impl Identity {
    pub fn new(h: i64, w: i64) -> Self {
        Identity { h, w }
    }
}

impl Transform for Identity {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        y.shallow_clone()
    }
    fn inverse(&self, y: &Tensor) -> Tensor {
        y.shallow_clone()
    }
    fn image_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn measurement_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn describe(&self) -> String {
        format!("identity {}x{}", self.h, self.w)
    }
}
