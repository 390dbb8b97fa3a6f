# The training image the Kubeflow templates (launch/kubeflow/) name: TensorFlow's official GPU image with this
# repository at /workspace/colorgan and colorgan installed. Build and push from the repository root (BUILD.md):
#   docker build -t REGISTRY/colorgan:TAG . && docker push REGISTRY/colorgan:TAG
# TF_VERSION: a tensorflow/tensorflow release tag (<version>-gpu images bring CUDA and cuDNN).
ARG TF_VERSION=2.21.0
FROM tensorflow/tensorflow:${TF_VERSION}-gpu
WORKDIR /workspace/colorgan
COPY . .
RUN pip install --no-cache-dir .
