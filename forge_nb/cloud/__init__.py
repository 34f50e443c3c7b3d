"Cloud runtimes beside the training stage (they take the training config as a dict and never import the trainer): SageMaker training jobs and HyperPod manifests."
from .sagemaker import (SageMakerRuntime, SageMakerTrainingJob, sagemaker_training_request, submit_sagemaker, hyperparameters,
                        GPUS_PER_INSTANCE)
from .hyperpod import HyperPodRuntime, hyperpod_job_manifest, manifests_yaml
